"""The floors of the house, enforced: an import may run down a floor or stay on its own, never up.

Why a test and not a picture only: the review that started issue 7 found three arrows running up (the
config importing the print domain, the buffer importing the DICOM layer, the print domain importing
its own DIMSE adapter) and production code importing the simulator, each added one reasonable
commit at a time. A picture in the README does not stop the next one; this does, and names the file
and line.

The floors, bottom to top (FLOORS below is the rule; each package's __init__ docstring repeats its
own line of it):

  image          pure pixel work (numpy); imports nothing of ours
  drivers        real hardware behind small interfaces; may use image/
  hw-sim         simulated devices that sit under the real drivers; may use drivers/ and image/.
                 Production code (gateway/, drivers/, image/) never imports it: simulators are
                 chosen by `kind` through the device registry (issue 7 item 5)
  leaves         gateway's small shared modules that know nothing of the rest: the event bus
                 and its catalogue of kinds, exit codes, logging setup, systemd notify, the implementation identity
  config         gateway.config (the schema and its loading), gateway.part10 (the Part-10 codec,
                 item 6), gateway.state (the snapshot folded from events)
  buffer         gateway.buffer (index, files, queue, intake) and gateway.routing (which
                 destinations an instance goes to; the intake applies it)
  domains        gateway.print (film sessions, rendering, the spool), gateway.media (file-sets,
                 export and import of media), gateway.capture (frames from the grabber made into
                 objects for the chosen procedure), gateway.status (the read-only status endpoint and
                 metrics: the snapshot, index reads) and gateway.panel (what the LEDs, display and
                 buttons mean; it calls the operator verbs through an injected Commands object, so
                 it needs nothing of the app floor): the appliance's own work, knowing no DIMSE
  dicom net      gateway.dicom.net: the upper-layer protocol code (item 6), and the DICOM
                 vocabulary both dicom floors speak (gateway.dicom.status, gateway.dicom.sop_classes:
                 status codes and UIDs; they live next to the roles but import nothing of ours)
  dicom roles    gateway.dicom: the service roles (Store, Print, Commitment SCP/SCU, ...)
  app            gateway.app (wiring, start/stop), gateway.commands (the operator verbs, in-process),
                 gateway.control (the socket the command line asks the running service through),
                 gateway.preflight (what `run` checks first) and gateway.conformance (the conformance
                 statement, rendered from the roles app.py wires)
  cli            gateway.cli, the command line (its verbs of Q/R, media and capture in gateway.cli_query,
                 gateway.cli_media, gateway.cli_capture), and gateway.operator_views (what it shows)

Decisions worth knowing:
- Imports inside `if TYPE_CHECKING:` do not count: they never run, and an annotation naming a
  higher floor's type is documentation, not a dependency.
- Imports inside functions do count: they run, and a lazy import is still an arrow.
- Within one floor any import is fine (buffer <-> routing, events <-> logs): the floors say what may
  depend on what; the order inside a floor is each package's business.
- Every module must sit on a floor: a new top-level module or package fails the test until it is
  placed in FLOORS, so the picture cannot silently go stale.
- KNOWN_VIOLATIONS are the arrows that other items of issue 7 remove. The test also fails when one of
  them no longer exists, so the list only shrinks: whoever removes an arrow deletes its line.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# The trees scanned: top-level package name -> its folder relative to the checkout.
PACKAGES = {"image": "image", "drivers": "drivers", "hwsim": "hw-sim/hwsim", "gateway": "gateway"}

# Bottom to top. A module's floor is the longest entry that is its name or a dotted prefix of it.
FLOORS: list[tuple[str, tuple[str, ...]]] = [
    ("image", ("image",)),
    ("drivers", ("drivers",)),
    ("hw-sim", ("hwsim",)),
    ("leaves", ("gateway.events", "gateway.event_kinds", "gateway.exit_codes", "gateway.logs",
                "gateway.systemd_notify", "gateway.identity")),
    ("config", ("gateway.config", "gateway.part10", "gateway.state")),
    ("buffer", ("gateway.buffer", "gateway.routing")),
    ("domains", ("gateway.print", "gateway.media", "gateway.status", "gateway.panel", "gateway.capture")),
    ("dicom net", ("gateway.dicom.net", "gateway.dicom.status", "gateway.dicom.sop_classes")),
    ("dicom roles", ("gateway.dicom",)),
    ("app", ("gateway.app", "gateway.commands", "gateway.control", "gateway.preflight", "gateway.conformance")),
    ("cli", ("gateway.cli", "gateway.operator_views", "gateway.cli_query", "gateway.cli_media", "gateway.cli_capture")),
]
# The `gateway` package itself (its __init__) holds nothing and imports nothing: anyone may import it.
EXACT = {"gateway": "leaves"}

# The simulator's package: below the gateway in the floors (it imports drivers/ and image/ only),
# but production code must not import it at all.
SIMULATOR = "hwsim"

# (importer, imported) -> which item of issue 7 removes the arrow. Line numbers are left out on
# purpose: they move with every edit above them; the failure message gives them.
KNOWN_VIOLATIONS: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class Import:
    importer: str   # dotted module name
    imported: str   # dotted module name, resolved to a module of ours where the name is one
    path: str       # file, relative to the scanned root
    line: int


def module_name(package: str, folder: Path, path: Path) -> str:
    parts = [package, *path.relative_to(folder).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(root: Path = ROOT) -> dict[str, Path]:
    """Every module of ours: dotted name -> file."""
    found: dict[str, Path] = {}
    for package, rel in PACKAGES.items():
        folder = root / rel
        for path in sorted(folder.rglob("*.py")):
            found[module_name(package, folder, path)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(node: ast.AST):
    """Every import statement under `node` except those in the body of `if TYPE_CHECKING:`."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for other in child.orelse:  # an `else:` branch does run
                yield from _import_nodes_of(other)
            continue
        yield from _import_nodes_of(child)


def _import_nodes_of(node: ast.AST):
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        yield node
    else:
        yield from _import_nodes(node)


def imports(root: Path = ROOT) -> list[Import]:
    """Every import of one of our modules, by one of our modules."""
    known = modules(root)
    ours = set(PACKAGES)
    out: list[Import] = []
    for name, path in known.items():
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in _import_nodes(tree):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                if node.level:  # relative: from the importer's package, up level-1 more
                    base = name.split(".") if is_package else name.split(".")[:-1]
                    base = base[:len(base) - (node.level - 1)]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                # `from gateway import config` imports the module gateway.config, not the package.
                targets = [f"{source}.{a.name}" if f"{source}.{a.name}" in known else source
                           for a in node.names]
            for target in dict.fromkeys(targets):  # `from m import a, b`: one arrow, not two
                if target.split(".")[0] in ours:
                    out.append(Import(name, target, str(path.relative_to(root)), node.lineno))
    return out


def floor_of(module: str) -> int | None:
    """The floor's index in FLOORS (0 = bottom), or None when the module is on no floor."""
    if module in EXACT:
        return [f for f, _ in FLOORS].index(EXACT[module])
    best: tuple[int, int] | None = None  # (prefix length, floor)
    for index, (_, prefixes) in enumerate(FLOORS):
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                if best is None or len(prefix) > best[0]:
                    best = (len(prefix), index)
    return None if best is None else best[1]


def why_wrong(imp: Import) -> str | None:
    """Why this import breaks a floor rule, or None when it keeps them."""
    importer_top, imported_top = imp.importer.split(".")[0], imp.imported.split(".")[0]
    if imported_top == SIMULATOR and importer_top != SIMULATOR:
        return "production code imports the simulator (choose it by kind through the device registry)"
    low, high = floor_of(imp.importer), floor_of(imp.imported)
    if low is None or high is None:
        return None  # reported by test_every_module_sits_on_a_floor
    if high > low:
        return f"runs up from floor '{FLOORS[low][0]}' to floor '{FLOORS[high][0]}'"
    return None


def violations(root: Path = ROOT) -> list[tuple[Import, str]]:
    return [(imp, why) for imp in imports(root) if (why := why_wrong(imp)) is not None]


def _describe(imp: Import, why: str) -> str:
    return f"{imp.path}:{imp.line}: {imp.importer} imports {imp.imported}: {why}"


# -- the house --------------------------------------------------------------------------------------

def test_every_module_sits_on_a_floor():
    unplaced = sorted(m for m in modules() if floor_of(m) is None)
    assert not unplaced, ("modules on no floor; place each in FLOORS (tests/unit/test_layers.py) and say "
                          f"so in its package's __init__ docstring: {unplaced}")


def test_no_import_runs_up_a_floor():
    found = [_describe(imp, why) for imp, why in violations()
             if (imp.importer, imp.imported) not in KNOWN_VIOLATIONS]
    assert not found, "imports running up a floor:\n" + "\n".join(found)


def test_known_violations_only_shrink():
    """A listed arrow that is gone must leave the list, so the list never hides a new one that
    happens to have the same two ends later."""
    present = {(imp.importer, imp.imported) for imp, _ in violations()}
    gone = sorted(f"{a} -> {b} ({item})" for (a, b), item in KNOWN_VIOLATIONS.items() if (a, b) not in present)
    assert not gone, "these known violations no longer exist; delete them from KNOWN_VIOLATIONS: " + "; ".join(gone)


def test_the_dicom_vocabulary_imports_nothing_of_ours():
    """status and sop_classes sit on the net floor although they live in gateway/dicom/: that holds
    only while they stay words (codes, UIDs) and import nothing of ours."""
    vocabulary = ("gateway.dicom.status", "gateway.dicom.sop_classes")
    found = [f"{imp.path}:{imp.line}: {imp.importer} imports {imp.imported}" for imp in imports()
             if imp.importer in vocabulary]
    assert not found, found


def test_the_config_imports_nothing_above_it():
    """The point of item 4, said on its own: gateway.config reaches only itself, image/ and the leaves."""
    config_floor = floor_of("gateway.config")
    up = [_describe(imp, f"floor {FLOORS[floor_of(imp.imported)][0]!r}") for imp in imports()
          if imp.importer.startswith("gateway.config") and floor_of(imp.imported) > config_floor]
    assert config_floor is not None and not up, up


# -- the checker itself, on a small made-up tree -----------------------------------------------------

def _tree(root: Path, files: dict[str, str]) -> Path:
    for rel in ["image/__init__.py", "drivers/__init__.py", "hw-sim/hwsim/__init__.py", "gateway/__init__.py"]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("")
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_checker_finds_upward_imports_and_ignores_type_checking(tmp_path):
    root = _tree(tmp_path, {
        "gateway/config/__init__.py": "",
        "gateway/config/base.py": (
            "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n"
            "    from gateway.buffer import index\n"      # never runs: not an arrow
            "else:\n"
            "    import gateway.events\n"                 # runs: down a floor, fine
            "def f():\n"
            "    from gateway.print import spool\n"       # runs when called: an arrow up
        ),
        "gateway/events.py": "",
        "gateway/buffer/__init__.py": "",
        "gateway/buffer/index.py": "from ..config import base\nfrom . import queue\n",  # down; same floor
        "gateway/buffer/queue.py": "",
        "gateway/print/__init__.py": "",
        "gateway/print/spool.py": "import hwsim\nfrom gateway import cli\n",
        "gateway/cli.py": "from gateway import config\n",
        "image/pure.py": "import numpy\nfrom drivers import x\n",  # third-party ignored; image -> drivers is up
        "drivers/x.py": "",
    })
    found = {(imp.importer, imp.imported, imp.line): why for imp, why in violations(root)}
    assert set(found) == {
        ("gateway.config.base", "gateway.print.spool", 7),
        ("gateway.print.spool", "hwsim", 1),
        ("gateway.print.spool", "gateway.cli", 2),
        ("image.pure", "drivers.x", 2),
    }, found
    assert "simulator" in found[("gateway.print.spool", "hwsim", 1)]
    assert "'config' to floor 'domains'" in found[("gateway.config.base", "gateway.print.spool", 7)]
    # relative imports resolve to the modules they name, and `from gateway import config` to the module
    targets = {(imp.importer, imp.imported) for imp in imports(root)}
    assert {("gateway.buffer.index", "gateway.config.base"), ("gateway.buffer.index", "gateway.buffer.queue"),
            ("gateway.cli", "gateway.config")} <= targets


def test_a_new_top_level_module_must_be_placed(tmp_path):
    _tree(tmp_path, {"gateway/unplaced/__init__.py": ""})
    assert floor_of("gateway.unplaced") is None
    assert "gateway.unplaced" in modules(tmp_path)

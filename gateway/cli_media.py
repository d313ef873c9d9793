"""`dicom-gateway import`, `imports`, `export` and `eject`: the media verbs of the command line
(gateway/media/ does the work; gateway/cli.py adds them with `add_parsers`, as it adds
gateway/cli_query.py's, so that cli.py does not grow).

import PATH reads a file-set into the buffer from this process (beside a running service or without
one); import DRIVE, export and eject are done by the running service: the CLI asks it over the
control socket (gateway/control.py) or queues jobs and wakes it (SIGUSR1). Exit codes as cli.py's:
0 done, 1 failed or refused, 2 bad command line or config.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

# The shared helpers (_load, _queue, _ask_service, ...) and UsageError: cli.py imports this module
# only inside build_parser, so the import below never meets a half-made gateway.cli.
from gateway import cli, exit_codes

if TYPE_CHECKING:
    from gateway.config import LoadedConfig


# A medium's label becomes the source MEDIA:<label> that routes match and the index records; the
# default is not the folder's name, which may be a patient's on a stick written by hand.
_LABEL_RE = re.compile(r"[A-Za-z0-9._-]{1,32}")
DEFAULT_IMPORT_LABEL = "IMPORT"


def _import_drive(loaded: LoadedConfig, drive: str, label: str | None) -> int:
    """`import DRIVE`: the running service reads the medium in its drive (Commands.import_medium)."""
    from gateway.commands import IMPORT_WAIT_S

    if label:
        raise cli.UsageError(f"import: --label is for a folder; an import from drive {drive} is labelled MEDIA:{drive}")
    return cli._ask_service(
        loaded, "import", IMPORT_WAIT_S + 30,
        f"import: drive {drive} is read by the running service, and no service runs on this buffer (start"
        " it: dicom-gateway run); to import a medium mounted or copied at a folder: dicom-gateway import PATH",
        drive=drive)


def cmd_eject(args) -> int:
    """`eject DRIVE`: the running service gives the medium in DRIVE back (Commands.eject); refused
    while it writes, verifies or reads it. Exit 0 ejected, 1 refused, 2 an unknown drive."""
    loaded = cli._load(args)
    drives = loaded.config.media.drives
    if args.drive not in drives:
        raise cli.UsageError(f"eject: unknown drive {args.drive!r} (configured: {', '.join(sorted(drives)) or 'none'})")
    return cli._ask_service(
        loaded, "eject", 60.0,
        f"eject: drive {args.drive} is driven by the running service, and no service runs on this buffer;"
        " with the service stopped, take the medium out by hand", drive=args.drive)


def cmd_import(args) -> int:
    """`import PATH [--label LABEL]`: the file-set under PATH into the buffer (gateway/media/importer.py),
    beside a running service or without one; exit 0 when every file was imported, 1 when some were not.

    `import DRIVE`: a bare name (no '/') that is a drive of [media.drives] means that drive, even
    when a folder of that name is in the current folder (`./NAME` or `NAME/` is the folder): the
    running service's worker for the drive reads and imports its medium, as on insertion, and the
    answer comes over the control socket (gateway/control.py). The drive wins because it is what
    the operator at the box means by "usb"; a folder is always reachable with a slash.

    Beside a running service the two processes share the index (SQLite serialises their write
    transactions; the duplicate check runs inside one) and the new forward jobs are announced with
    SIGUSR1, as the queue verbs do. What assumes one process: the service's start-up recovery
    (Buffer.recover) deletes everything in incoming/ and every file under objects/ not yet
    indexed, so this command holds the buffer's lock when no service runs, and beside a running
    service it holds a writer's lock (buffer/lock.py writer) that makes a service restarted
    meanwhile leave the cleaning to its next start. Retention's room-making before a reserve
    refusal is the service's only: here a full reserve fails the file (disk-full)."""
    from gateway.buffer.intake import Intake
    from gateway.dicom.sop_classes import storage_sop_classes
    from gateway.events import EventBus
    from gateway.media.importer import import_tree
    from gateway.part10.attributes import configure_pydicom

    loaded = None
    if "/" not in args.path:
        loaded = cli._load(args)
        if args.path in loaded.config.media.drives:
            return _import_drive(loaded, args.path, args.label)
    label = args.label or DEFAULT_IMPORT_LABEL
    if not _LABEL_RE.fullmatch(label):
        raise cli.UsageError(f"import: label {label!r}: 1 to 32 letters, digits, '.', '_' or '-'")
    root = Path(args.path)
    if not root.is_dir():
        raise cli.UsageError(f"import: {root}: {'not a folder' if root.exists() else 'no such folder'}"
                         " (give the folder a medium is mounted or copied at, or a drive of [media.drives])")
    loaded = loaded or cli._load(args)
    cfg = loaded.config
    with cli.buffer_for_writing(loaded) as (buffer, beside):
        configure_pydicom()
        intake = Intake(cfg, buffer, EventBus(), storage_sop_classes(cfg.storage.extra_sop_classes))
        report = import_tree(root, label, intake, buffer.files.new_incoming_path)
    how = "followed its DICOMDIR" if report.method == "dicomdir" else report.note
    print(f"import {report.import_id} of {root} as MEDIA:{label}: {how}")
    if report.method == "dicomdir" and report.note:
        print(f"note: {report.note}")
    for item in report.problems():
        print(item.line())
    print(report.summary())
    if report.routed:
        if not beside:
            print("no service is running on this buffer: the imported objects are forwarded at its next start")
        else:
            cli._wake_service(loaded.buffer_dir)
    if not report.ok:
        print(f"some files were not imported (above); the report: dicom-gateway imports {report.import_id}")
        return exit_codes.FAILED
    return exit_codes.OK


def cmd_imports(args) -> int:
    from gateway.buffer.imports import ImportStore
    from gateway.operator_views import show_imports

    return show_imports(ImportStore(cli._queue(cli._load(args)).index), args.id)


def cmd_export(args) -> int:
    """`export STUDY_UID... [--to DRIVE] [--copies N] [--wait]`: queue the studies for media
    (gateway/media/export.py), wake the running service, print the job ids. With --wait, follow
    the jobs in the index: exit 0 when every medium was verified, 1 as soon as one attempt failed
    (the job itself waits for the next medium; `queue list` shows it), 2 for a usage error."""
    from gateway import commands

    loaded = cli._load(args)
    commands.export_drive(loaded.config, args.to)  # a usage error before the buffer is opened
    q = cli._queue(loaded)
    # The split is decided now, for the smallest medium the drive's kind takes: the CLI does not
    # touch a drive the service may be burning with.
    result = commands.export(q, loaded.config, args.studies, args.to, args.copies, mark=not args.no_mark)
    for line in result.lines()[:-1]:
        print(line)
    ids = [r.job_id for r in result.results]
    cli._wake_service(loaded.buffer_dir)
    if not args.wait:
        return exit_codes.OK
    from gateway.operator_views import follow_exports

    try:
        return exit_codes.OK if follow_exports(q, ids, sys.stdout.isatty()) else exit_codes.FAILED
    except KeyboardInterrupt:
        # --wait waits for a medium as long as it takes; leaving it gives nothing up.
        print(f"\nstopped waiting; job{'s' if len(ids) > 1 else ''} {', '.join(map(str, ids))} stay queued "
              "(dicom-gateway queue list)", file=sys.stderr)
        return exit_codes.INTERRUPTED


def _copies(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 20:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of copies (1 to 20)")
    return int(text)


def _import_id(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not an import's number (a number from `imports`)")
    return int(text)


def add_parsers(add) -> None:
    """Add `import`, `imports`, `export` and `eject` to the command line; `add(name, func, help)` is
    cli.py's helper (it adds --config and --set)."""
    sp = add("import", cmd_import, "import the DICOM files under a folder (a medium's file-set), or the medium in "
                                   "a drive, into the buffer")
    sp.add_argument("path", metavar="PATH|DRIVE",
                    help="the folder: a mounted or copied medium (its DICOMDIR is followed, else every file is "
                         "read); or a drive of [media.drives], whose medium the running service reads (./NAME "
                         "for a folder named like a drive)")
    sp.add_argument("--label", help=f"the medium's name; the source is MEDIA:<label> (default {DEFAULT_IMPORT_LABEL})")
    sp = add("imports", cmd_imports, "the reports of media imports, or one import's files")
    sp.add_argument("id", nargs="?", type=_import_id, help="an import's number: its files and what became of each")
    sp = add("export", cmd_export, "write studies to a USB stick, CD or DVD (queued; the service writes them)")
    sp.add_argument("studies", nargs="+", metavar="STUDY_UID", help="Study Instance UIDs held in the buffer")
    sp.add_argument("--to", metavar="DRIVE", help="drive name from [media.drives] (default: the only one)")
    sp.add_argument("--copies", type=_copies, default=1, help="how many media (default 1)")
    sp.add_argument("--no-mark", action="store_true",
                    help="do not count the studies as exported (an export rule taking studies not yet "
                         "exported still takes them)")
    sp.add_argument("--wait", action="store_true",
                    help="follow the jobs until every medium is verified (exit 0) or an attempt fails (exit 1)")
    sp = add("eject", cmd_eject, "give back the medium in a drive (refused while it is written or read)")
    sp.add_argument("drive", metavar="DRIVE", help="drive name from [media.drives]")

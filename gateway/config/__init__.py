"""The appliance's configuration: one TOML file, typed and strict. The bottom of the gateway.

Unknown keys and out-of-range values are rejected with the dotted key and the reason, because on a box
with no screen a typo that silently falls back to a default is found only when a study goes missing.

What lives here (the schema, and reading it; no behaviour):
  base.py          Section (extra="forbid", strict, frozen) and the shared value types: AETitle,
                   Host, Port, Uid, IntRange / FloatRange (bounded numbers), backoff_problems
  ae.py, timers.py, peers.py, destinations.py, routes.py, buffer.py, storage.py, logging.py,
  print.py, media.py, status_http.py
                   one module per `[section]`; a new feature (media, capture, panel, query) adds its
                   own module here and its field in root.py
  root.py          Config: the whole file, and the checks that span sections
  load.py          load(), ConfigError, LoadedConfig, --set overrides, the state directory

What it may import: pydantic, the standard library, image/ (film sizes, display formats, the
characteristic curve) and itself; never anything above it (gateway.buffer, gateway.print,
gateway.dicom, gateway.app, gateway.cli, ...). Features import their section from here, never the
other way round: a section that lived in its feature made the config import upward, and every
feature after it would have added another such arrow. tests/unit/test_layers.py enforces it.

`from gateway.config import X` keeps working for every public name the single module
gateway/config.py had.

Relative paths (buffer.path, print.printer.sim_out, ...) never depend on the process's cwd (which is /
under systemd). They resolve against the state directory, the first that applies:
1. $STATE_DIRECTORY, which systemd sets from the unit's StateDirectory= (/var/lib/dicom-gateway);
2. /var/lib/dicom-gateway when the config file is in /etc/dicom-gateway/ (the installed layout), so
   that a CLI command run by hand finds the buffer the service uses;
3. the config file's folder (a checkout: config/gateway.toml keeps its data in config/).
`check-config` prints where each path ends up.
"""

from __future__ import annotations

from pathlib import Path

from gateway.config.ae import AESection
from gateway.config.base import (AETitle, FloatRange, Host, IntRange, Port, Section, Uid, _check_ae_title,
                                 backoff_problems, is_uid)
from gateway.config.buffer import BufferSection
from gateway.config.destinations import DestinationSection
from gateway.config.load import (INSTALLED_CONFIG_DIR, INSTALLED_STATE_DIR, ConfigError, LoadedConfig,
                                 apply_overrides, load, state_directory)
from gateway.config.logging import LoggingSection
from gateway.config.peers import PeerSection
from gateway.config.print import PrinterDevice, PrintSection
from gateway.config.root import Config
from gateway.config.routes import RouteSection
from gateway.config.storage import StorageSection
from gateway.config.timers import TimersSection

# The names the single module had, kept so no importer changes: `UID` (now `Uid`, like the other
# types' spelling) and `_Section` (now `Section`, public because every section module uses it).
UID = Uid
_Section = Section

__all__ = [
    "AESection", "AETitle", "BufferSection", "Config", "ConfigError", "DestinationSection", "FloatRange",
    "Host", "INSTALLED_CONFIG_DIR", "INSTALLED_STATE_DIR", "IntRange", "LoadedConfig", "LoggingSection",
    "PeerSection", "Port", "PrintSection", "PrinterDevice", "RouteSection", "Section",
    "StorageSection", "TimersSection", "UID", "Uid", "apply_overrides", "backoff_problems", "is_uid", "load",
    "state_directory",
]
# Reached through this package by old importers, though not part of its interface: the CLI checks an
# --aet argument with _check_ae_title, and a test builds a path with config.Path.
__all__ += ["Path", "_check_ae_title"]

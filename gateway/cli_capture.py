"""`dicom-gateway worklist` and `dicom-gateway capture`: the modality worklist and video capture
verbs of the command line (gateway/cli.py adds them with `add_parsers`, as it adds
gateway/cli_query.py's, so that cli.py does not grow).

Both are done by the running service, which holds the worklist SCU, the grabber and the MPPS queue:
the CLI asks it over the control socket (gateway/control.py); the worklist listing is read from the
buffer's cached copy. Exit codes as cli.py's: 0 done, 1 failed or refused, 2 bad command line or
config.
"""

from __future__ import annotations

import argparse
import sys

# The shared helpers (_load, _ask_service) and UsageError: cli.py imports this module only inside
# build_parser, so the import below never meets a half-made gateway.cli.
from gateway import cli, exit_codes


def cmd_worklist(args) -> int:
    """`worklist [--refresh] [--select N|KEY | --next | --previous | --unscheduled]`: the changes go
    to the running service (gateway/control.py worklist_verbs), then the listing: the buffer's
    cached worklist and, from the service, which procedure is current and whether the SCP answers."""
    import json
    import shutil

    from gateway import control
    from gateway.buffer.worklist import WorklistStore
    from gateway.operator_views import worklist_lines

    loaded = cli._load(args)
    no_service = ("worklist: choosing the procedure and refreshing are done by the running service, and no"
                  " service runs on this buffer (start it: dicom-gateway run)")
    rc = exit_codes.OK
    if args.refresh:
        rc = cli._ask_service(loaded, "worklist-refresh", loaded.config.worklist.timeout_s + 15, no_service)
    verb = ("procedure-select" if args.select is not None else "procedure-next" if args.next
            else "procedure-previous" if args.previous else "procedure-unscheduled" if args.unscheduled else None)
    if verb is not None:
        extra = {"which": args.select} if args.select is not None else {}
        rc = max(rc, cli._ask_service(loaded, verb, 30.0, no_service, **extra))
    status = None
    try:
        answer = control.request(loaded.buffer_dir, "worklist-status", 10.0)
        if not answer.get("refused"):
            status = json.loads(answer.get("summary") or "{}")
    except (control.ControlError, ValueError):
        status = None  # no service (or an older one): the buffer's copy alone
    encoding = sys.stdout.encoding or "utf-8"
    for line in worklist_lines(WorklistStore(loaded.buffer_dir).load(), status,
                               shutil.get_terminal_size((100, 24)).columns, encoding):
        print(line.encode(encoding, "replace").decode(encoding, "replace"))
    return rc


def cmd_capture(args) -> int:
    """`capture [--clip [SECONDS]] [--no-wait] | --end | --discontinue`: the running service's
    grabber takes a still (or records a clip) for the current procedure (Commands.capture), or ends
    the procedure (its MPPS). Exit 0 stored, 1 refused or failed, 2 a usage mistake."""
    loaded = cli._load(args)
    cfg = loaded.config.capture
    no_service = ("capture: the grabber is driven by the running service, and no service runs on this buffer "
                  "(start it: dicom-gateway run)")
    if args.end or args.discontinue:
        return cli._ask_service(loaded, "capture-end", 30.0, no_service, discontinued=bool(args.discontinue))
    clip = 0.0 if args.clip is None else (args.clip or cfg.clip_s)
    if clip and not clip <= cfg.clip_max_s:
        raise cli.UsageError(f"capture: --clip {clip:g}: a clip lasts at most {cfg.clip_max_s:g} s"
                             " (capture.clip_max_s)")
    # A clip is waited for (its length and the encoder's tail) unless --no-wait: the answer is then
    # what reached the buffer, not that recording began.
    wait = 0.0 if not clip or args.no_wait else clip + 30.0
    return cli._ask_service(loaded, "capture", wait + 30.0, no_service, clip_s=float(clip), wait_s=wait)


def _clip_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value >= 0.5:
        raise argparse.ArgumentTypeError(f"{text!r}: a clip lasts at least 0.5 s")
    return value


def add_parsers(add) -> None:
    """Add `worklist` and `capture` to the command line; `add(name, func, help)` is cli.py's helper
    (it adds --config and --set)."""
    sp = add("worklist", cmd_worklist, "the modality worklist and the current procedure a capture is for")
    sp.add_argument("--refresh", action="store_true", help="ask the worklist SCP now (the running service does)")
    choice = sp.add_mutually_exclusive_group()
    choice.add_argument("--select", metavar="N|KEY", help="make item N of the listing (or the item with that key)"
                                                         " the current procedure")
    choice.add_argument("--next", action="store_true", help="the next item becomes current (wraps)")
    choice.add_argument("--previous", action="store_true", help="the previous item becomes current (wraps)")
    choice.add_argument("--unscheduled", action="store_true",
                        help="capture for no worklist item: a generated Patient ID, flagged unscheduled")
    sp = add("capture", cmd_capture, "take a still (or record a clip) from the grabber for the current procedure")
    what = sp.add_mutually_exclusive_group()
    what.add_argument("--clip", nargs="?", const=0.0, type=_clip_seconds, metavar="SECONDS",
                      help="record a clip (default length: capture.clip_s) instead of a still")
    what.add_argument("--end", action="store_true", help="the procedure is over: its MPPS is completed")
    what.add_argument("--discontinue", action="store_true",
                      help="the procedure was stopped before it was finished: its MPPS is discontinued")
    sp.add_argument("--no-wait", action="store_true", help="with --clip: answer when recording starts")

"""Exit codes of `dicom-gateway`, one meaning each (README, "Exit codes"; the unit's
RestartPreventExitStatus= lists the ones a restart cannot cure)."""

OK = 0
# The operation ran and failed: a peer refused, a file was not sent, nothing matched.
FAILED = 1
# Bad command line or config: everything `check-config` refuses. A restart cannot fix it.
CONFIG = 2
# The buffer is held by another running instance (its PID is named). A restart would only collide again.
BUFFER_IN_USE = 3
# The DICOM port is in use by another program. May clear (a lingering process): systemd retries.
PORT_IN_USE = 4
# An unexpected internal error (a bug): one line on stderr, the traceback in the log.
INTERNAL = 70
# Interrupted with Ctrl-C.
INTERRUPTED = 130

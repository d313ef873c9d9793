"""Frame grabbers: a legacy modality's video output as frames (issue 10).

interface.py is the contract the capture service (gateway/capture/) uses; the real kinds register
in devices.py (``v4l2``: v4l2.py, through PyAV), hw-sim's frame source by entry point
(``grabber.sim``), read by the same driver through pipe.py."""

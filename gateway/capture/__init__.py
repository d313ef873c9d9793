"""Capture: a legacy modality's video frames made into DICOM objects for the chosen procedure
(issue 10).  Domains floor: it knows the buffer and the grabber interface, no DIMSE; the worklist
and MPPS SCUs (gateway/dicom/) feed it and report for it through the buffer."""

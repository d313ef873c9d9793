"""Pixel work for film printing and media previews (thumbnail.py): pure numpy, arrays in and arrays
out.

Nothing in this package opens a file, a socket or a device, so every function is cheap to test and
to benchmark; drivers/ and the Print SCP do the I/O around it.

Floor: the bottom (tests/unit/test_layers.py). It imports numpy and itself, nothing else of ours.
"""

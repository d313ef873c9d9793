"""Real hardware behind small interfaces; hw-sim/ provides simulated devices underneath them.

registry.py maps a config's device `kind` to a factory, per family (printer, printer-language):
drivers/ registers the real kinds, hw-sim its simulators through the `dicom_gateway.devices` entry
points.  Nothing here imports gateway/ or hwsim.
"""

"""Removable media drives behind one interface (issue 8 item 3): optical (CD/DVD), USB mass storage.

interface  MediumKind, MediumInfo, the MediaError family and the MediaDrive protocol
optical    ISO 9660 level 1 mastering and burning with xorriso, read-back verification
usb_disk   a FAT file system on a stick's partition written with mtools, never mounted
hotplug    udev properties -> MediaEvent (inserted / removed), and the pyudev event source
devices    the ``media`` family of the device registry: the real kinds ``optical`` and ``usb``

hw-sim's ``optical-sim`` and ``usb-sim`` (hwsim/media.py) run these same drivers on an image file.
Floor: drivers (imports nothing of gateway/ and never hwsim).
"""

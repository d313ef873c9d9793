"""A foot pedal (foot switch) that triggers captures (issue 10): a key on a Linux input device.

interface     Pedal, PedalEvent, PedalError: the small contract gateway/capture/pedal.py uses
evdev_pedal   EvdevPedal: one key of an evdev input device (a USB foot switch, which is an HID
              keyboard sending one key, or a GPIO pedal on gpio-keys), decoded by the panel's
              EvdevButtons (drivers/panel/buttons_evdev.py), not a copy of it
devices       the ``pedal`` family of the device registry: the real kind ``evdev``

hw-sim's ``sim`` kind (hwsim/pedal.py) runs EvdevPedal over a FIFO of input events.
Floor: drivers (imports nothing of gateway/ and never hwsim).
"""

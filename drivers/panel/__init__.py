"""The front panel's hardware behind one interface (issue 9 item 3): LEDs, buttons, a character display.

interface     FrontPanel and its parts (Leds, Display, Buttons), ButtonEvent, LED patterns, PanelError
leds_sysfs    Linux LEDs in /sys/class/leds; blinking by the kernel's "timer" trigger
buttons_evdev gpio-keys buttons from an evdev input device (python-evdev)
lcd_hd44780   an HD44780 2x16 / 2x20 display on I2C via a PCF8574 backpack (RPLCD over smbus2)
lcd_serial    a serial LCD speaking SparkFun's SerLCD command set (pyserial)
front_panel   Panel: the three parts as one FrontPanel; NoDisplay
devices       the ``panel`` family of the device registry: the real kind ``linux``

hw-sim's ``sim`` kind (hwsim/panel.py) runs these same drivers over a fake sysfs tree, an HD44780
that decodes the I2C bytes, and a FIFO of input events.  What the panel *means* is gateway/panel/.
Floor: drivers (imports nothing of gateway/ and never hwsim).
"""

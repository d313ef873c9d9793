# The README's commands. `make run`: the appliance on simulated hardware with config/gateway.toml.
# `make test`: installs what it needs (venv; Debian packages when root) and runs the whole suite.
# `make bench`: measurements against DCMTK peers in the same run (not part of `make test`).
# `make install` (root): the service on this machine, run by systemd (see README, "Installing").

VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_WORKERS ?= auto
# What the interop tests and the service use from Debian (see ../shared/PEERS.md).
APT_PACKAGES := dcmtk orthanc dicom3tools xorriso genisoimage dosfstools mtools ghostscript \
	libsystemd-dev pkg-config systemd curl fonts-dejavu-core fonts-ipafont-gothic python3-venv \
	chromium chromium-driver udev python3-seccomp gcc libc6-dev fuse3

.PHONY: run test bench deps venv check-config clean pacs try-echo try-store try-print install

# make install: the package in its own venv, the console script in /usr/bin (where the unit looks),
# the config in /etc (never overwritten), the unit, the udev rules giving the service's group its
# devices, and the system user. DESTDIR stages it elsewhere (then no user is created and neither
# systemd nor udev is told).
DESTDIR ?=
INSTALL_VENV ?= /opt/dicom-gateway
# The unit's SupplementaryGroups= (serial printers and LCD); the box's other devices go to the group
# dicom-gateway through config/udev/70-dicom-gateway.rules.
SUPPLEMENTARY_GROUPS := dialout
UDEV_RULES := config/udev/70-dicom-gateway.rules
# What the rules match: re-run on the devices already present so they get the group at once.
UDEV_SUBSYSTEMS := usb usbmisc block scsi_generic video4linux i2c-dev input leds

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml | deps
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@if pkg-config --exists libsystemd 2>/dev/null; then \
		$(PY) -m pip install -q -e '.[systemd]'; \
	else echo "libsystemd-dev/pkg-config missing: running without systemd-python (no sd_notify, no journald)"; fi
	touch $@

deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian packages: $$missing"; \
		DEBIAN_FRONTEND=noninteractive apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	else \
		echo "not root: missing Debian packages ($$missing); tests that need them skip, naming the package"; \
	fi

test: venv
	$(PY) -m pytest -n $(PYTEST_WORKERS) -q -p no:cacheprovider

run: venv
	$(VENV)/bin/dicom-gateway run --config config/gateway.toml

install:
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" != 0 ]; then echo "make install: run as root (or set DESTDIR)"; exit 2; fi
	python3 -m venv $(DESTDIR)$(INSTALL_VENV)
	$(DESTDIR)$(INSTALL_VENV)/bin/pip install -q .
	@if pkg-config --exists libsystemd 2>/dev/null; then \
		$(DESTDIR)$(INSTALL_VENV)/bin/pip install -q '.[systemd]'; \
	else echo "libsystemd-dev/pkg-config missing: installed without systemd-python (no sd_notify: Type=notify would time out)"; exit 1; fi
	install -d $(DESTDIR)/usr/bin $(DESTDIR)/etc/dicom-gateway $(DESTDIR)/etc/systemd/system $(DESTDIR)/usr/share/doc/dicom-gateway \
		$(DESTDIR)/etc/udev/rules.d
	ln -sf $(INSTALL_VENV)/bin/dicom-gateway $(DESTDIR)/usr/bin/dicom-gateway
	@if [ -e $(DESTDIR)/etc/dicom-gateway/gateway.toml ]; then \
		echo "kept the existing /etc/dicom-gateway/gateway.toml (the shipped one: config/gateway.toml)"; \
	else install -m 0644 config/gateway.toml $(DESTDIR)/etc/dicom-gateway/gateway.toml; fi
	install -m 0644 config/dicom-gateway.service $(DESTDIR)/etc/systemd/system/dicom-gateway.service
	install -m 0644 $(UDEV_RULES) $(DESTDIR)/etc/udev/rules.d/
	install -m 0644 README.md CONFORMANCE.md $(DESTDIR)/usr/share/doc/dicom-gateway/
	@if [ -z "$(DESTDIR)" ]; then \
		for g in $(SUPPLEMENTARY_GROUPS); do getent group $$g >/dev/null || groupadd --system $$g; done; \
		getent passwd dicom-gateway >/dev/null || useradd --system --user-group --home-dir /var/lib/dicom-gateway \
			--no-create-home --shell /usr/sbin/nologin dicom-gateway; \
		if [ -d /run/systemd/system ]; then systemctl daemon-reload; fi; \
		if [ -S /run/udev/control ]; then \
			udevadm control --reload && \
			udevadm trigger --action=change $(foreach s,$(UDEV_SUBSYSTEMS),--subsystem-match=$(s)); \
		else echo "udev is not running: the rules apply from the next boot"; fi; \
		echo "installed; start with: systemctl enable --now dicom-gateway"; \
	fi

# A PACS to forward to while trying `make run` (the default config's destination): DCMTK storescp.
pacs:
	mkdir -p var/pacs
	storescp -aet PACS -od var/pacs 11114

# Try the running appliance (`make run` in another terminal) with DCMTK and the default titles/ports.
SAMPLE = $$($(abspath $(PY)) -c "import pydicom, pathlib; print(pathlib.Path(pydicom.__file__).parent / 'data/test_files/$(1)')")
CT_SAMPLE = $(call SAMPLE,CT_small.dcm)
# The print sample carries a VOI window (CT_small has none: dcmpsprt would render it almost flat grey).
MR_SAMPLE = $(call SAMPLE,MR_small.dcm)
try-echo: venv
	echoscu -v -aet ECHOSCU -aec EDGE 127.0.0.1 11112

try-store: venv
	storescu -v -aet STORESCU -aec EDGE 127.0.0.1 11112 $(CT_SAMPLE)

try-print: venv
	mkdir -p var/try-print/db var/try-print/spool
	cd var/try-print && dcmpsprt -c ../../config/try/printscu.cfg -p GATEWAY --layout 1 1 \
		--filmsize 8INX10IN $(MR_SAMPLE)
	cd var/try-print && dcmprscu -c ../../config/try/printscu.cfg -p GATEWAY -v $$(ls -t db/SP_*.dcm | head -1)

check-config: venv
	$(VENV)/bin/dicom-gateway check-config --config config/gateway.toml

bench: venv
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) var config/buffer config/films

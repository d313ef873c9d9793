# The README's commands. `make run`: the appliance on simulated hardware with config/gateway.toml.
# `make test`: installs what it needs (venv; Debian packages when root) and runs the whole suite.
# `make bench`: measurements against DCMTK peers in the same run (not part of `make test`).

VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_WORKERS ?= auto
# What the interop tests and the service use from Debian (see ../shared/PEERS.md).
APT_PACKAGES := dcmtk orthanc dicom3tools xorriso genisoimage dosfstools mtools ghostscript \
	libsystemd-dev pkg-config systemd curl fonts-dejavu-core fonts-ipafont-gothic python3-venv

.PHONY: run test bench deps venv check-config clean pacs

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

# A PACS to forward to while trying `make run` (the default config's destination): DCMTK storescp.
pacs:
	mkdir -p var/pacs
	storescp -aet PACS -od var/pacs 11114

check-config: venv
	$(VENV)/bin/dicom-gateway check-config --config config/gateway.toml

bench: venv
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) var

# camvirtd: `make run` runs the service on the local sandbox, `make test` runs every check.
# Both install what they need (apt packages, a .venv at the repo root) and can be run again safely.

SHELL := /bin/bash
VENV := .venv
PYTHON := $(VENV)/bin/python
APT_PACKAGES := libvirt-dev pkg-config libvirt-daemon libvirt-daemon-system libvirt-clients \
	rpm systemd qemu-system-x86 libvirt-daemon-driver-qemu busybox-static iproute2 nftables tmux
PYTEST_ARGS ?=

.PHONY: deps apt venv test test-unit test-qemu lint run bench rpm install clean

deps: apt venv

apt:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null \
		| grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing: $$missing"; \
		apt-get -o DPkg::Lock::Timeout=600 update -qq && DEBIAN_FRONTEND=noninteractive \
			apt-get -o DPkg::Lock::Timeout=600 install -y -qq $$missing >/dev/null; \
	fi

venv: $(VENV)/.installed

$(VENV)/.installed: requirements-dev.txt
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	touch $@

lint: venv
	$(VENV)/bin/ruff check .

# guest-image (mk/sandbox.mk): the real-VM tests' kernel and initramfs, built once into a cache.
test: deps lint guest-image
	$(PYTHON) -m pytest -q $(PYTEST_ARGS)

# The inner loop: the unit tests alone (no private libvirtd, guest image, RPM build or benchmark).
UNIT_TEST_ARGS := --ignore=tests/e2e --ignore=tests/test_packaging.py --ignore=tests/test_bench_smoke.py
test-unit: venv
	$(PYTHON) -m pytest -q $(UNIT_TEST_ARGS) $(PYTEST_ARGS)

# Only the end-to-end tests with real QEMU guests.
test-qemu: deps guest-image
	$(PYTHON) -m pytest -q -m qemu $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info

# Targets of their own (make run, make rpm, make install, make bench) live in mk/*.mk.
include $(wildcard mk/*.mk)

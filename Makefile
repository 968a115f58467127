# camvirtd: `make run` runs the service on the local sandbox, `make test` runs every check.
# Both install what they need (apt packages, a .venv at the repo root) and can be run again safely.

SHELL := /bin/bash
VENV := .venv
PYTHON := $(VENV)/bin/python
APT_PACKAGES := libvirt-dev pkg-config libvirt-daemon libvirt-daemon-system libvirt-clients \
	rpm systemd qemu-system-x86 libvirt-daemon-driver-qemu busybox-static \
	systemd-container python3-libvirt python3-pyro4 python3-jsonschema python3-rich rpmlint iproute2 nftables tmux \
	python3-pip python3-setuptools python3-wheel man-db
PYTEST_ARGS ?=

.PHONY: deps apt venv test test-unit test-qemu test-py39 test-py312 lint run bench rpm install clean fuzz

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

# constraints-dev.txt: the versions the tests last passed with.
$(VENV)/.installed: requirements-dev.txt constraints-dev.txt
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install -q --disable-pip-version-check -r requirements-dev.txt -c constraints-dev.txt
	touch $@

lint: venv
	$(VENV)/bin/ruff check .

# guest-image (mk/sandbox.mk): the real-VM tests' kernel and initramfs, built once into a cache.
test: deps lint guest-image
	$(PYTHON) -m pytest -q $(PYTEST_ARGS)
	@$(MAKE) --no-print-directory -k test-py39 test-py312

# The inner loop: the unit tests alone (no private libvirtd, guest image, RPM build or benchmark).
UNIT_TEST_ARGS := --ignore=tests/e2e --ignore=tests/packaging/test_packaging.py --ignore=tests/benchmark
test-unit: venv
	$(PYTHON) -m pytest -q -n auto $(UNIT_TEST_ARGS) $(PYTEST_ARGS)

# The unit tests under Rocky 9's Python (3.9, with jsonschema 3.2.0) and Rocky 10's (3.12), each in a
# venv of its own (.venv-py39, .venv-py312) made from pyenv's (or PATH's) interpreter. A machine
# without one says so and skips it.
python_for = $(firstword $(wildcard $(HOME)/.pyenv/versions/$(1).*/bin/python$(1)) $(shell command -v python$(1) 2>/dev/null))

define unit_tests_under
	@python=$(call python_for,$(1)); \
	if [ -z "$$python" ]; then \
		echo "*** SKIPPED: the unit tests under Python $(1) (Rocky $(2)): no python$(1) here (pyenv install $(1))"; \
	else \
		set -e; echo "unit tests under $$($$python --version) (Rocky $(2))"; \
		if [ ! -x $(3)/bin/python ] || [ requirements-dev.txt -nt $(3)/.installed ] || \
				[ constraints-dev.txt -nt $(3)/.installed ]; then \
			$$python -m venv $(3); \
			$(3)/bin/python -m pip install -q --disable-pip-version-check -r requirements-dev.txt -c constraints-dev.txt; \
			touch $(3)/.installed; \
		fi; \
		$(3)/bin/python -m pytest -q -rs -n auto -p no:cacheprovider $(UNIT_TEST_ARGS) $(PYTEST_ARGS); \
	fi
endef

test-py39:
	$(call unit_tests_under,3.9,9,.venv-py39)

test-py312:
	$(call unit_tests_under,3.12,10,.venv-py312)

# Only the end-to-end tests with real QEMU guests.
test-qemu: deps guest-image
	$(PYTHON) -m pytest -q -m qemu $(PYTEST_ARGS)

# The wire fuzzer (tests/e2e/test_e2e_fuzz.py) for as long as asked, e.g. an hour:
#   make fuzz FUZZ_SECONDS=3600
# It prints the cases tried and the invariants broken (make test runs it for 60 s).
FUZZ_SECONDS ?= 600
fuzz: deps
	FUZZ_SECONDS=$(FUZZ_SECONDS) $(PYTHON) -m pytest -q -s -p no:cacheprovider tests/e2e/test_e2e_fuzz.py

clean:
	rm -rf $(VENV) .venv-py39 .venv-py312 build dist *.egg-info

# Targets of their own (make run, make rpm, make install, make bench) live in mk/*.mk.
include $(wildcard mk/*.mk)

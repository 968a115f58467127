# make rpm: the six RPM packages (rockit-camvirt.spec) into RPM_OUT. It needs rpmbuild and the target's
# Python, nothing from apt: it runs on Rocky (.github/workflows/el9.yml, el10.yml) as here.
# make install: the same files straight onto a host without RPMs (DESTDIR and PREFIX as usual;
# CONFIG=<name> also installs config/<name>.json into /etc/camvirtd). On a host, make install leaves
# making the camvirtd user to systemd-sysusers (run `systemd-sysusers` once, or reboot).
# Both run one recipe, packaging/install-tree (the package as a wheel, then the unit and the rest).
RPM_OUT ?= build/rpms
RPM_TOP ?= build/rpmbuild
# The one version (rockit/camvirt/version.py): the UTC time of the commit built, else now.
VERSION ?= $(shell TZ=UTC git log -1 --format=%cd --date=format-local:%Y%m%d%H%M%S 2>/dev/null || date -u +%Y%m%d%H%M%S)
# The Rocky Linux release the packages are for: its Python decides site-packages, python(abi) and the
# byte code. By default the build host's own release when it is Rocky/RHEL, else 9. On Debian the
# target's interpreter comes from pyenv (or a python3.X on PATH); RPM_PYTHON=... names another.
HOST_EL := $(shell rpm --eval '%{?rhel}' 2>/dev/null)
EL ?= $(or $(HOST_EL),9)
EL_PYTHON_9 := 3.9
EL_PYTHON_10 := 3.12
EL_PYTHON = $(EL_PYTHON_$(EL))
RPM_PYTHON ?= $(firstword $(wildcard /usr/bin/python$(EL_PYTHON) $(HOME)/.pyenv/versions/$(EL_PYTHON).*/bin/python$(EL_PYTHON)) \
	$(shell command -v python$(EL_PYTHON) 2>/dev/null))
PREFIX ?= /usr
# make install's Python (the host's python3) and where its package goes.
INSTALL_PYTHON ?= python3
SITELIB ?= $(shell $(INSTALL_PYTHON) -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
# An interpreter of the same version that can build the wheel (packaging/wheel-python).
wheel_python = $(shell packaging/wheel-python $(1) $(abspath build)/wheel-python-$$($(1) -c 'import sys; print("%d.%d" % sys.version_info[:2])'))
# Off Rocky, rpmbuild keeps its database in RPM_TOP, not the host's; on Rocky it checks the spec's
# BuildRequires against the host's own.
RPM_DBPATH = $(if $(HOST_EL),,--define "_dbpath $(abspath $(RPM_TOP))/db")
# RPM_SITELIB=...: site-packages of another layout (the systemd test's Debian container).
RPM_SITELIB ?=

.PHONY: rpm rpmlint install

rpm:
	@test -n "$(EL_PYTHON)" || { echo "make rpm: EL=$(EL): only EL=9 or EL=10" >&2; exit 1; }
	@test -n "$(RPM_PYTHON)" || { echo "make rpm: EL=$(EL) needs Python $(EL_PYTHON) (pyenv install $(EL_PYTHON), or RPM_PYTHON=...)" >&2; exit 1; }
	@command -v rpmbuild >/dev/null || { echo "make rpm: needs rpmbuild (dnf install rpm-build; apt install rpm)" >&2; exit 1; }
	mkdir -p $(RPM_OUT) $(RPM_TOP)
	python=$(call wheel_python,$(RPM_PYTHON)) && test -n "$$python" && rpmbuild --quiet -bb rockit-camvirt.spec \
		--define "_topdir $(abspath $(RPM_TOP))" --define "_sourcedir $(CURDIR)" \
		--define "_rpmdir $(abspath $(RPM_OUT))" --define "_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm" \
		--define "_version $(VERSION)" $(RPM_DBPATH) \
		--define "__python3 $$python" $(if $(RPM_SITELIB),--define "python3_sitelib $(RPM_SITELIB)")
	@ls $(RPM_OUT)

# rpmlint on the packages and the spec: clean, but for the findings rockit-camvirt.rpmlintrc drops
# (each explained in the spec).
rpmlint: rpm
	rpmlint -r rockit-camvirt.rpmlintrc $(RPM_OUT)/*.rpm rockit-camvirt.spec

install:
	python=$(call wheel_python,$(INSTALL_PYTHON)) && test -n "$$python" && \
		VERSION=$(VERSION) PYTHON=$$python DESTDIR=$(DESTDIR) PREFIX=$(PREFIX) SITELIB=$(SITELIB) \
		CONFIGS="$(CONFIG)" packaging/install-tree

# make man: camvirtd(8) and camvirt(1) again from the argument parsers (committed in man/; a test
# says when they are out of date).
.PHONY: man
man: venv
	$(PYTHON) packaging/manpages.py

# make rpm: the five RPM packages (rockit-camvirt.spec) into RPM_OUT.
# make install: the same files straight onto a host without RPMs (DESTDIR and PREFIX as usual;
# CONFIG=<name> also installs config/<name>.json into /etc/camvirtd). On a host, make install leaves
# making the camvirtd user to systemd-sysusers (run `systemd-sysusers` once, or reboot).
RPM_OUT ?= build/rpms
RPM_TOP ?= build/rpmbuild
# The one version (rockit/camvirt/version.py): the UTC time of the commit built, else now.
VERSION ?= $(shell TZ=UTC git log -1 --format=%cd --date=format-local:%Y%m%d%H%M%S 2>/dev/null || date -u +%Y%m%d%H%M%S)
# The Rocky Linux release the packages are for: its Python decides site-packages, python(abi) and the
# byte code. By default the build host's own release when it is Rocky/RHEL, else 9. On Debian the
# target's interpreter comes from pyenv (or a python3.X on PATH); RPM_PYTHON=... names another.
EL ?= $(or $(shell rpm --eval '%{?rhel}' 2>/dev/null),9)
EL_PYTHON_9 := 3.9
EL_PYTHON_10 := 3.12
EL_PYTHON = $(EL_PYTHON_$(EL))
RPM_PYTHON ?= $(firstword $(wildcard /usr/bin/python$(EL_PYTHON) $(HOME)/.pyenv/versions/$(EL_PYTHON).*/bin/python$(EL_PYTHON)) \
	$(shell command -v python$(EL_PYTHON) 2>/dev/null))
PREFIX ?= /usr
SITELIB ?= $(shell python3 -c 'import sysconfig; print(sysconfig.get_path("purelib"))')

.PHONY: rpm rpmlint install

rpm: apt
	@test -n "$(EL_PYTHON)" || { echo "make rpm: EL=$(EL): only EL=9 or EL=10" >&2; exit 1; }
	@test -n "$(RPM_PYTHON)" || { echo "make rpm: EL=$(EL) needs Python $(EL_PYTHON) (pyenv install $(EL_PYTHON), or RPM_PYTHON=...)" >&2; exit 1; }
	mkdir -p $(RPM_OUT) $(RPM_TOP)
	rpmbuild --quiet -bb rockit-camvirt.spec \
		--define "_topdir $(abspath $(RPM_TOP))" --define "_sourcedir $(CURDIR)" \
		--define "_rpmdir $(abspath $(RPM_OUT))" --define "_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm" \
		--define "_version $(VERSION)" --define "_dbpath $(abspath $(RPM_TOP))/db" \
		--define "__python3 $(RPM_PYTHON)"
	@ls $(RPM_OUT)

# rpmlint on the packages and the spec: clean, but for the findings rockit-camvirt.rpmlintrc drops
# (each explained in the spec).
rpmlint: rpm
	rpmlint -r rockit-camvirt.rpmlintrc $(RPM_OUT)/*.rpm rockit-camvirt.spec

install:
	install -D -m 0755 camvirtd $(DESTDIR)$(PREFIX)/bin/camvirtd
	install -D -m 0755 camvirt $(DESTDIR)$(PREFIX)/bin/camvirt
	install -D -m 0644 camvirtd@.service $(DESTDIR)/usr/lib/systemd/system/camvirtd@.service
	install -D -m 0644 packaging/camvirtd.sysusers $(DESTDIR)/usr/lib/sysusers.d/camvirtd.conf
	install -D -m 0644 packaging/camvirtd.polkit.rules $(DESTDIR)/usr/share/polkit-1/rules.d/50-camvirtd.rules
	install -D -m 0644 completion/camvirt $(DESTDIR)/etc/bash_completion.d/camvirt
	install -d $(DESTDIR)$(SITELIB)/rockit/camvirt/data $(DESTDIR)/etc/camvirtd
	cd rockit/camvirt && find . -name '*.py' -not -path '*/__pycache__/*' \
		-exec install -D -m 0644 {} $(DESTDIR)$(SITELIB)/rockit/camvirt/{} ';'
	echo "VERSION = '$(VERSION)'" > $(DESTDIR)$(SITELIB)/rockit/camvirt/_version.py
	install -m 0644 rockit/camvirt/data/*.json $(DESTDIR)$(SITELIB)/rockit/camvirt/data/
	$(if $(CONFIG),install -m 0644 config/$(CONFIG).json $(DESTDIR)/etc/camvirtd/)

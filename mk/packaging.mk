# make rpm: the five RPM packages (rockit-camvirt.spec) into RPM_OUT.
# make install: the same files straight onto a host without RPMs (DESTDIR and PREFIX as usual;
# CONFIG=<name> also installs config/<name>.json into /etc/camvirtd).
RPM_OUT ?= build/rpms
RPM_TOP ?= build/rpmbuild
VERSION ?= $(shell date -u +%Y%m%d%H%M%S)
PREFIX ?= /usr
SITELIB ?= $(shell python3 -c 'import sysconfig; print(sysconfig.get_path("purelib"))')

.PHONY: rpm install

rpm: apt
	mkdir -p $(RPM_OUT) $(RPM_TOP)
	rpmbuild --quiet -bb rockit-camvirt.spec \
		--define "_topdir $(abspath $(RPM_TOP))" --define "_sourcedir $(CURDIR)" \
		--define "_rpmdir $(abspath $(RPM_OUT))" --define "_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm" \
		--define "_version $(VERSION)" --define "_dbpath $(abspath $(RPM_TOP))/db"
	@ls $(RPM_OUT)

install:
	install -D -m 0755 camvirtd $(DESTDIR)$(PREFIX)/bin/camvirtd
	install -D -m 0755 camvirt $(DESTDIR)$(PREFIX)/bin/camvirt
	install -D -m 0644 camvirtd@.service $(DESTDIR)/usr/lib/systemd/system/camvirtd@.service
	install -D -m 0644 completion/camvirt $(DESTDIR)/etc/bash_completion.d/camvirt
	install -d $(DESTDIR)$(SITELIB)/rockit/camvirt/data $(DESTDIR)/etc/camvirtd
	install -m 0644 rockit/camvirt/*.py $(DESTDIR)$(SITELIB)/rockit/camvirt/
	install -m 0644 rockit/camvirt/data/*.json $(DESTDIR)$(SITELIB)/rockit/camvirt/data/
	$(if $(CONFIG),install -m 0644 config/$(CONFIG).json $(DESTDIR)/etc/camvirtd/)

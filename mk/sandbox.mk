# make run: the sandbox (a private libvirtd with simulated camera VMs, see camvirt-sandbox) and camvirtd,
# both on RUN_CONFIG, in the foreground. camvirtd starts once the sandbox says it is ready, so that its
# first look at libvirt finds the domains. Ctrl-C stops both; so does either one ending.
# make run QEMU=1: the same with real QEMU guests (camvirt-sandbox --qemu, config/test-qemu.json).
ifeq ($(QEMU),1)
RUN_CONFIG ?= config/test-qemu.json
SANDBOX_OPTIONS ?= --qemu
RUN_NEEDS := guest-image
else
RUN_CONFIG ?= config/test.json
SANDBOX_OPTIONS ?=
RUN_NEEDS :=
endif

ifeq ($(SITE),1)
# make run SITE=1: a whole site in network namespaces instead (testworld/camvirt-site: TCS, two DAS hosts
# with their libvirtd, camera VMs and camvirtd, a dashboard host), until Ctrl-C; it prints the commands
# to try from each host. SITE_OPTIONS: e.g. --camera-delay-ms 50 --camera-loss-percent 1 (see --help).
SITE_DIR ?= /tmp/camvirt-site
SITE_OPTIONS ?=
run: deps
	./testworld/camvirt-site --dir $(SITE_DIR) $(SITE_OPTIONS)
else
# camvirtd's state file stays in the clone (build/ is ignored by git; `make clean` resets it), not
# beside the installed service's in /var/lib/camvirtd.
RUN_STATE_DIR ?= build/run-state

run: deps $(RUN_NEEDS)
	$(PYTHON) -m testworld.run $(SANDBOX_OPTIONS) --state-dir $(RUN_STATE_DIR) $(RUN_CONFIG)
endif

# The real guests' kernel (Debian's, from apt) and busybox initramfs, cached in ~/.cache/camvirt-sandbox.
# `apt-get download` needs package lists: fetched once when the first try finds none.
.PHONY: guest-image
guest-image: deps
	@mkdir -p build; $(PYTHON) -m testworld.guestimage >/dev/null 2>build/guest-image.log || { \
		echo "guest image: first try failed ($$(tail -n 1 build/guest-image.log)); fetching package lists"; \
		apt-get -o DPkg::Lock::Timeout=600 update -qq && $(PYTHON) -m testworld.guestimage >/dev/null; }

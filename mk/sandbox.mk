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
# The sandbox runs as a coprocess so that the recipe can read its ready line; `cat` then passes the
# rest of its output on, ignoring Ctrl-C so that the sandbox's last lines still have a reader.
run: export CAMVIRTD_REGISTRY ?= testworld/registry-local.json
run: deps $(RUN_NEEDS)
	@trap 'kill -TERM $$sandbox $$daemon 2>/dev/null; wait; exit 130' INT TERM; \
	coproc SANDBOX { exec ./testworld/camvirt-sandbox $(SANDBOX_OPTIONS) $(RUN_CONFIG); }; \
	sandbox=$$SANDBOX_PID; exec 3<&"$${SANDBOX[0]}"; \
	ready=; while IFS= read -r line <&3; do echo "$$line"; \
		case "$$line" in 'sandbox ready:'*) ready=1; break;; esac; done; \
	if [ -z "$$ready" ]; then wait $$sandbox; exit 1; fi; \
	(trap '' INT; exec cat <&3) & \
	./camvirtd $(RUN_CONFIG) & daemon=$$!; \
	wait -n $$sandbox $$daemon; status=$$?; \
	kill -TERM $$sandbox $$daemon 2>/dev/null; wait; exit $$status
endif

# The real guests' kernel (Debian's, from apt) and busybox initramfs, cached in ~/.cache/camvirt-sandbox.
# `apt-get download` needs package lists: fetched once when the first try finds none.
.PHONY: guest-image
guest-image: deps
	@$(PYTHON) -m testworld.guestimage >/dev/null 2>&1 || { apt-get update -qq && \
		$(PYTHON) -m testworld.guestimage >/dev/null; }

# make run: the sandbox (a private libvirtd with simulated camera VMs, see camvirt-sandbox) and camvirtd,
# both on RUN_CONFIG, in the foreground. camvirtd starts once the sandbox says it is ready, so that its
# first look at libvirt finds the domains. Ctrl-C stops both; so does either one ending.
RUN_CONFIG ?= config/test.json

# The sandbox runs as a coprocess so that the recipe can read its ready line; `cat` then passes the
# rest of its output on, ignoring Ctrl-C so that the sandbox's last lines still have a reader.
run: deps
	@trap 'kill -TERM $$sandbox $$daemon 2>/dev/null; wait; exit 130' INT TERM; \
	coproc SANDBOX { exec ./camvirt-sandbox $(RUN_CONFIG); }; \
	sandbox=$$SANDBOX_PID; exec 3<&"$${SANDBOX[0]}"; \
	ready=; while IFS= read -r line <&3; do echo "$$line"; \
		case "$$line" in 'sandbox ready:'*) ready=1; break;; esac; done; \
	if [ -z "$$ready" ]; then wait $$sandbox; exit 1; fi; \
	(trap '' INT; exec cat <&3) & \
	./camvirtd $(RUN_CONFIG) & daemon=$$!; \
	wait -n $$sandbox $$daemon; status=$$?; \
	kill -TERM $$sandbox $$daemon 2>/dev/null; wait; exit $$status

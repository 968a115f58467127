"""End-to-end tests: the sandbox, camvirtd and camvirt as separate processes (pytest -m e2e)."""

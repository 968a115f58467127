"""The test world of camvirtd: what the tests, `make run` and the benchmark build around it on one
machine (a private libvirtd, simulated or real QEMU camera VMs, simulated camds). Never installed on an
observatory host; nothing in rockit.camvirt imports it."""

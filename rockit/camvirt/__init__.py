"""camvirtd: starts, stops and watches the camera VMs of a rockit data-acquisition host."""

__version__ = '1.0.0'

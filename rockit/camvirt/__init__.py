"""camvirtd: starts, stops and watches the camera VMs of a rockit data-acquisition host."""

# One version for the RPMs, `make install` and __version__: the UTC commit time of the source
# (YYYYMMDDHHMMSS, the rockit packages' scheme), see version.py. Installed copies carry it in a
# generated _version.py; a git clone asks git the first time __version__ is read.


def __getattr__(name):
    if name == '__version__':
        from .shared.version import current_version
        return current_version()
    raise AttributeError('module {!r} has no attribute {!r}'.format(__name__, name))

"""The real guests' image: modules in load order, the initramfs archive, the unpacked kernel."""

import gzip
import lzma
import os
import subprocess

import pytest

from testworld.guestimage import (
    BUSYBOX,
    GuestImageError,
    module_depends,
    modules_in_load_order,
    pack_initramfs,
    uncompressed_kernel,
)


def fake_module(tree, name, depends=''):
    """A .ko whose .modinfo names its dependencies, where the kernel package keeps it."""
    path = tree / 'lib' / 'modules' / '6.1.0-test-amd64' / 'kernel' / 'drivers' / (name + '.ko')
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b'\x7fELF\x00' + b'\x00license=GPL\x00depends=' + depends.encode() + b'\x00vermagic=6.1\x00')
    return str(path)


def test_module_depends_reads_modinfo(tmp_path):
    assert module_depends(fake_module(tmp_path, 'virtio_net', 'net_failover,virtio')) == ['net_failover', 'virtio']
    assert module_depends(fake_module(tmp_path, 'virtio')) == []


def test_modules_come_after_their_dependencies_once_each(tmp_path):
    fake_module(tmp_path, 'virtio')
    fake_module(tmp_path, 'virtio_ring', 'virtio')
    fake_module(tmp_path, 'virtio_net', 'virtio_ring,virtio,net_failover')
    fake_module(tmp_path, 'net_failover', 'failover')
    fake_module(tmp_path, 'failover')
    fake_module(tmp_path, '9pnet_virtio', 'virtio_ring,virtio')  # a dash in the name is the same module

    order = [name for name, _ in modules_in_load_order(str(tmp_path), ['virtio_net', '9pnet-virtio'])]
    assert sorted(order) == sorted(set(order))
    assert set(order) == {'virtio', 'virtio_ring', 'virtio_net', 'net_failover', 'failover', '9pnet_virtio'}
    for before, after in [('virtio', 'virtio_ring'), ('virtio_ring', 'virtio_net'), ('failover', 'net_failover'),
                          ('net_failover', 'virtio_net')]:
        assert order.index(before) < order.index(after)


def test_a_missing_module_is_named(tmp_path):
    fake_module(tmp_path, 'virtio_net', 'virtio')
    with pytest.raises(GuestImageError, match='kernel module virtio not found'):
        modules_in_load_order(str(tmp_path), ['virtio_net'])


@pytest.mark.skipif(not os.path.exists(BUSYBOX), reason='busybox-static is installed by make test')
def test_the_initramfs_unpacks_with_busybox_cpio(tmp_path):
    archive = tmp_path / 'initrd.img'
    pack_initramfs([('bin', 0o755, None), ('init', 0o755, b'#!/bin/sh\necho hi\n'),
                    ('modules', 0o755, None), ('modules/odd-size.ko', 0o644, b'x' * 1001)], str(archive))
    (tmp_path / 'initrd.cpio').write_bytes(gzip.decompress(archive.read_bytes()))
    out = tmp_path / 'out'
    out.mkdir()
    with open(tmp_path / 'initrd.cpio', 'rb') as cpio:
        subprocess.run([BUSYBOX, 'cpio', '-i', '-d'], stdin=cpio, cwd=out, check=True, capture_output=True)

    assert (out / 'init').read_bytes() == b'#!/bin/sh\necho hi\n'
    assert os.stat(out / 'init').st_mode & 0o777 == 0o755
    assert (out / 'modules' / 'odd-size.ko').read_bytes() == b'x' * 1001
    assert (out / 'bin').is_dir()


def test_an_xz_kernel_is_unpacked_once(tmp_path):
    elf = b'\x7fELF' + os.urandom(4096)
    vmlinuz = tmp_path / 'vmlinuz-6.1.0-test-amd64'
    vmlinuz.write_bytes(b'MZ boot code' + lzma.compress(elf, format=lzma.FORMAT_XZ) + b'trailing data')
    cache = tmp_path / 'cache'
    cache.mkdir()

    kernel = uncompressed_kernel(str(vmlinuz), str(cache))
    assert kernel == str(cache / 'vmlinux-6.1.0-test-amd64')
    assert open(kernel, 'rb').read() == elf
    vmlinuz.unlink()
    assert uncompressed_kernel(str(vmlinuz), str(cache)) == kernel  # from the cache now


def test_a_kernel_that_cannot_be_unpacked_is_booted_as_it_is(tmp_path):
    vmlinuz = tmp_path / 'vmlinuz-6.1.0-test-amd64'
    vmlinuz.write_bytes(b'MZ no known compression here')
    assert uncompressed_kernel(str(vmlinuz), str(tmp_path)) == str(vmlinuz)

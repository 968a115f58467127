"""A small Linux guest for real camera VMs in the sandbox: Debian's generic kernel and a busybox
initramfs whose /init runs the simulated camd from the host's own root (shared read-only over 9p).

Built from apt packages into a cache folder and reused: the kernel package is downloaded once
(`apt-get download`, whichever linux-image-*-amd64-unsigned apt offers today) and unpacked; the
initramfs is packed in Python (newc cpio, gzip), so no cpio package is needed (busybox has one; the tests
use it to check the archive).
"""

import glob
import gzip
import hashlib
import lzma
import os
import re
import shutil
import subprocess
import sys
import zlib

BUSYBOX = '/bin/busybox'  # from busybox-static: needs no libraries inside the guest
DEFAULT_CACHE = os.path.expanduser('~/.cache/camvirt-sandbox')
# What the guest needs from the kernel's modules; their dependencies are added in load order.
GUEST_MODULES = ['virtio_pci', 'virtio_net', '9pnet_virtio', '9p', 'button', 'evdev']

INIT_SCRIPT = r'''#!/bin/busybox sh
# /init of a camvirt-sandbox camera guest. Kernel arguments:
#   cam=PORT:OBJECT:CAMERA:BEHAVIOUR   one per camera: serve its simulated camd on guest port PORT;
#                                      BEHAVIOUR is answers, hung (never answers) or absent (never starts)
#   cam_acpi=0                         ignore the ACPI power button
#   cam_python=PATH cam_repo=PATH      the host's python and repository, seen through /hostroot
/bin/busybox mount -t proc proc /proc
/bin/busybox --install -s /bin
export PATH=/bin
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
ACPI=1; CAMS=
for a in $(cat /proc/cmdline); do
  case "$a" in
    cam=*) CAMS="$CAMS ${a#cam=}" ;;
    cam_acpi=*) ACPI=${a#cam_acpi=} ;;
    cam_python=*) PYTHON=${a#cam_python=} ;;
    cam_repo=*) REPO=${a#cam_repo=} ;;
  esac
done
for m in $(cat /modules.order); do insmod /modules/$m.ko || echo "guest: insmod $m failed"; done
if [ "$ACPI" = 1 ]; then
  mkdir -p /etc/acpi/PWRF
  printf '#!/bin/sh\necho "guest: power button, powering off"\npoweroff -f\n' > /etc/acpi/PWRF/00000080
  chmod +x /etc/acpi/PWRF/00000080
  acpid -c /etc/acpi -l /dev/null
else
  echo "guest: ignoring the power button"
fi
ip link set lo up
ip link set eth0 up
# QEMU's user-mode network always gives the guest this address.
ip addr add 10.0.2.15/24 dev eth0
ip route add default via 10.0.2.2
mkdir -p /hostroot
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=512000 hostroot /hostroot
mount -t proc proc /hostroot/proc
mount -t devtmpfs dev /hostroot/dev
for cam in $CAMS; do
  IFS=:; set -- $cam; unset IFS
  case "$4" in
    absent) echo "guest: camd of camera $3 stays absent"; continue ;;
    hung) HANGS=--hangs ;;
    *) HANGS= ;;
  esac
  PYTHONPATH=$REPO PYTHONDONTWRITEBYTECODE=1 HOME=/ chroot /hostroot $PYTHON -m testworld.simcamd \
    --host 0.0.0.0 --port $1 --object-id $2 --camera-id $3 $HANGS &
  echo "guest: camd of camera $3 starting on port $1"
done
while :; do sleep 3600; done
'''


class GuestImageError(Exception):
    """The guest image cannot be built; the message says what is missing."""


def _run(args, cwd=None):
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise GuestImageError('{} failed: {}'.format(' '.join(args), result.stderr.strip()[-300:]))
    return result.stdout


def newest_kernel_package():
    """The newest linux-image-<version>-amd64-unsigned that apt offers."""
    names = re.findall(r'^(linux-image-(\d[\w.-]*)-amd64-unsigned)\s', _run(
        ['apt-cache', 'search', '--names-only', r'^linux-image-[0-9.-]*-amd64-unsigned$']), re.M)
    if not names:
        raise GuestImageError('apt offers no linux-image-*-amd64-unsigned package (run apt-get update)')
    return max(names, key=lambda n: [int(x) for x in re.findall(r'\d+', n[1])])[0]


def kernel_tree(cache, wanted):
    """(folder, vmlinuz) of the kernel package unpacked in the cache, downloaded on first use (or when
    a wanted module is not there). Only the wanted modules are kept: the rest is 400 MB."""
    tree = os.path.join(cache, 'kernel')
    kernels = glob.glob(os.path.join(tree, 'boot', 'vmlinuz-*'))
    if kernels:
        try:
            modules_in_load_order(tree, wanted)
            return tree, kernels[0]
        except GuestImageError:
            pass  # a module added since the cache was made
    unpacked = tree + '.tmp'
    shutil.rmtree(unpacked, ignore_errors=True)
    download = os.path.join(cache, 'download')
    os.makedirs(download, exist_ok=True)
    _run(['apt-get', 'download', newest_kernel_package()], cwd=download)
    for deb in glob.glob(os.path.join(download, '*.deb')):
        _run(['dpkg-deb', '-x', deb, unpacked])
        os.remove(deb)
    needed = {path for _, path in modules_in_load_order(unpacked, wanted)}
    for module in glob.glob(os.path.join(unpacked, 'lib', 'modules', '*', 'kernel', '**', '*.ko'), recursive=True):
        if module not in needed:
            os.remove(module)
    shutil.rmtree(os.path.join(unpacked, 'usr'), ignore_errors=True)
    shutil.rmtree(tree, ignore_errors=True)
    os.rename(unpacked, tree)
    return tree, glob.glob(os.path.join(tree, 'boot', 'vmlinuz-*'))[0]


def module_depends(path):
    """The modules a .ko needs, from its .modinfo section's depends= entry."""
    with open(path, 'rb') as f:
        found = re.search(rb'\x00depends=([^\x00]*)\x00', f.read())
    return [m for m in found.group(1).decode().split(',') if m] if found else []


def modules_in_load_order(tree, wanted):
    """[(name, path)] of the wanted modules and their dependencies, dependencies first."""
    paths = {os.path.basename(p)[:-3].replace('-', '_'): p
             for p in glob.glob(os.path.join(tree, 'lib', 'modules', '*', 'kernel', '**', '*.ko'), recursive=True)}
    order = []

    def add(name):
        name = name.replace('-', '_')
        if name in (n for n, _ in order):
            return
        if name not in paths:
            raise GuestImageError('kernel module {} not found in {}'.format(name, tree))
        for dependency in module_depends(paths[name]):
            add(dependency)
        order.append((name, paths[name]))

    for name in wanted:
        add(name)
    return order


def _cpio_entry(name, mode, data=b''):
    header = '070701{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}'.format(
        0, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name) + 1, 0).encode()
    entry = header + name.encode() + b'\0'
    entry += b'\0' * (-len(entry) % 4) + data
    return entry + b'\0' * (-len(entry) % 4)


def pack_initramfs(files, path):
    """A gzip'd newc cpio archive: files is [(name in archive, mode, bytes or None for a folder)]."""
    archive = b''.join(_cpio_entry(name, mode | (0o040000 if data is None else 0o100000), data or b'')
                       for name, mode, data in files)
    archive += _cpio_entry('TRAILER!!!', 0)
    with gzip.open(path, 'wb', compresslevel=1) as f:
        f.write(archive)


def uncompressed_kernel(vmlinuz, cache):
    """The kernel as a plain ELF image (vmlinux) when it can be unpacked here, else vmlinuz itself:
    under TCG the guest spends seconds decompressing its own kernel, QEMU loads an ELF directly."""
    vmlinux = os.path.join(cache, os.path.basename(vmlinuz).replace('vmlinuz', 'vmlinux', 1))
    if os.path.exists(vmlinux):
        return vmlinux
    with open(vmlinuz, 'rb') as f:
        packed = f.read()
    for magic, unpack in ((b'\xfd7zXZ\x00', lambda data: lzma.LZMADecompressor().decompress(data)),
                          (b'\x1f\x8b\x08', lambda data: zlib.decompressobj(31).decompress(data))):
        start = packed.find(magic)
        if start < 0:
            continue
        try:
            image = unpack(packed[start:])
        except (lzma.LZMAError, zlib.error):
            continue
        if image.startswith(b'\x7fELF'):
            with open(vmlinux + '.tmp', 'wb') as f:
                f.write(image)
            os.replace(vmlinux + '.tmp', vmlinux)
            return vmlinux
    return vmlinuz


def build_guest_image(cache=DEFAULT_CACHE):
    """(kernel, initramfs) paths, built into the cache when missing."""
    if not os.path.exists(BUSYBOX):
        raise GuestImageError('{} is missing: install the busybox-static package'.format(BUSYBOX))
    os.makedirs(cache, exist_ok=True)
    tree, vmlinuz = kernel_tree(cache, GUEST_MODULES)
    kernel = uncompressed_kernel(vmlinuz, cache)
    # Named after what it holds (the kernel's modules, /init and busybox), so that clones of different
    # versions sharing one cache each boot their own /init.
    content = hashlib.sha256(INIT_SCRIPT.encode() + repr(GUEST_MODULES).encode() + BUSYBOX.encode())
    initrd = os.path.join(cache, 'initrd-{}-{}.img'.format(os.path.basename(vmlinuz), content.hexdigest()[:12]))
    if os.path.exists(initrd):
        return kernel, initrd
    modules = modules_in_load_order(tree, GUEST_MODULES)
    with open(BUSYBOX, 'rb') as f:
        busybox = f.read()
    files = [('bin', 0o755, None), ('proc', 0o755, None), ('sys', 0o755, None), ('dev', 0o755, None),
             ('etc', 0o755, None), ('modules', 0o755, None), ('bin/busybox', 0o755, busybox),
             ('init', 0o755, INIT_SCRIPT.encode()),
             ('modules.order', 0o644, '\n'.join(name for name, _ in modules).encode() + b'\n')]
    for name, path in modules:
        with open(path, 'rb') as f:
            files.append(('modules/{}.ko'.format(name), 0o644, f.read()))
    partial = '{}.{}.tmp'.format(initrd, os.getpid())  # two builds at once must not mix their files
    pack_initramfs(files, partial)
    shutil.move(partial, initrd)
    return kernel, initrd


def main():
    """Builds the guest image into the cache (make guest-image) and prints where it is."""
    try:
        kernel, initrd = build_guest_image()
    except GuestImageError as e:
        print('camvirt guest image: {}'.format(e), file=sys.stderr)
        return 1
    print('guest kernel {}\nguest initramfs {}'.format(kernel, initrd))
    return 0


if __name__ == '__main__':
    sys.exit(main())

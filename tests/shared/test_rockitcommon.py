"""rockit.common as a registry layer: read from a stand-in of today's shape in a process of its own;
entries camvirtd cannot use, or a rockit.common that does not import, are warnings, never a stop."""

import os
import socket
import subprocess
import sys

from rockit.camvirt.shared.rockitcommon import read_rockit_common
from testworld.rockitcommon_standin import TODAY_DAEMONS, env_with, load_in_a_process, write_rockit_common
from testworld.support import write_one_camera_files

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STING_DAS1 = os.path.join(REPO, 'config', 'sting_das1.json')


def test_absent_is_none():
    assert read_rockit_common() is None  # the test venv has no rockit.common


def test_daemons_are_placed_on_the_machine_with_their_address(tmp_path):
    """rockit.common gives a daemon's host as an address; where one machine has it, the daemon lives on
    that machine (so that an operator file moving the machine moves the daemon)."""
    script = ('from rockit.camvirt.shared.rockitcommon import read_rockit_common as r; l = r(); '
              'print(l.daemons["sting_camvirt_das1"], l.daemons["goto_dome1_gtecs_mnt"], len(l.daemons), l.warnings)')
    out = subprocess.run([sys.executable, '-c', script], env=env_with(write_rockit_common(tmp_path)),
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out == "('sting_camvirt_daemon_das1', 'STINGDAS1', 9012) ('mnt', 'GOTOControl1', 9001) {} []".format(
        len(TODAY_DAEMONS) + 6)


def test_entries_camvirtd_cannot_use_are_left_out_with_a_warning(tmp_path):
    common = write_rockit_common(
        tmp_path, machines={'BadMachine': '999.1.1.1'},
        daemons={'sting_cam2': ('sting camera', 'STINGCameraVM2', 9041)},
        extra_daemons_source='''
            bad_port = PyroDaemon('bad_port_daemon', IP.STINGTCS, 70000)
            on_a_name = PyroDaemon('named_host_daemon', 'somehost', 9000)
        ''')
    loaded = load_in_a_process(common, [STING_DAS1])
    assert loaded['warnings'] == [
        "rockit.common: IP.BadMachine: '999.1.1.1' is not an IP address; left out",
        "rockit.common: daemons.sting_cam2: object_id 'sting camera' is not a Pyro object id (a Pyro object id "
        'is 1-128 printable characters without spaces or "@"); left out',
        'rockit.common: daemons.bad_port: port 70000 is not a TCP port (1-65535); left out',
        "rockit.common: daemons.on_a_name: host 'somehost' is not an IP address; left out",
    ]
    # The name rockit.common could not give stays the shipped layer's.
    config = loaded['configs'][STING_DAS1]
    assert config['cameras']['cam2'] == 'PYRO:sting_camera_daemon_2@10.2.6.166:9041'
    assert config['sources'] == {'sting_camvirt_das1': 'rockit.common', 'sting_cam1': 'rockit.common',
                                 'sting_cam2': 'shipped; host STINGCameraVM2 from rockit.common'}


def test_a_rockit_common_that_does_not_import_is_a_warning(tmp_path):
    for init, reason in [('import rich_but_missing\n', "No module named 'rich_but_missing'"),
                         ('raise RuntimeError("half installed")\n', 'RuntimeError: half installed')]:
        common = write_rockit_common(tmp_path / str(len(reason)), init_source=init)
        loaded = load_in_a_process(common, [STING_DAS1])
        (warning,) = loaded['warnings']
        assert warning.startswith('rockit.common: installed but cannot be imported (') and reason in warning
        assert loaded['configs'][STING_DAS1]['sources']['sting_camvirt_das1'] == 'shipped'


def test_camvirtd_says_at_start_which_entries_it_left_out(tmp_path):
    """camvirtd serves on the other layers and tells the journal (stderr) what rockit.common offered that it
    could not use; systemd's readiness notification says when it serves."""
    common = write_rockit_common(tmp_path / 'common', extra_daemons_source="""
        broken = PyroDaemon('broken daemon', IP.STINGTCS, 9000)
    """)
    registry, config, _port = write_one_camera_files(tmp_path)
    notify_path = str(tmp_path / 'notify')
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(notify_path)
        notify.settimeout(30)
        env = env_with(common, CAMVIRTD_REGISTRY=registry, NOTIFY_SOCKET=notify_path,
                       STATE_DIRECTORY=str(tmp_path / 'state'))
        daemon = subprocess.Popen([os.path.join(REPO, 'camvirtd'), config], env=env, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert notify.recv(100) == b'READY=1'
            daemon.terminate()
            _, err = daemon.communicate(timeout=15)
        finally:
            daemon.kill()
            daemon.wait()
    assert daemon.returncode == 0
    assert err.splitlines()[0] == (
        "camvirtd: warning: rockit.common: daemons.broken: object_id 'broken daemon' is not a Pyro object id "
        '(a Pyro object id is 1-128 printable characters without spaces or "@"); left out')

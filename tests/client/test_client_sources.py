"""`camvirt config` says where each name it shows came from: shipped, rockit.common or which operator file
(run as a process, with a stand-in of today's rockit.common where it matters)."""

import json
import os
import subprocess

from testworld.rockitcommon_standin import env_with, write_rockit_common
from testworld.support import REPO

CAMVIRT = os.path.join(REPO, 'camvirt')


def camvirt_config(env, *args):
    result = subprocess.run([CAMVIRT, 'config'] + list(args), env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result


def test_config_names_each_layer(tmp_path):
    common = write_rockit_common(tmp_path / 'common', extra_daemons_source="""
        broken = PyroDaemon('broken_daemon', IP.STINGTCS, 0)
    """)
    operator = tmp_path / 'site.json'
    operator.write_text(json.dumps({'machines': {'STINGCameraVM2': '192.0.2.66'},
                                    'daemons': {'observatory_log': {'object_id': 'log', 'host': 'STINGTCS',
                                                                    'port': 9916}}}))
    env = env_with(common, CAMVIRTD_REGISTRY=str(operator),
                   CAMVIRTD_CONFIG_PATH=os.path.join(REPO, 'config', 'sting_das1.json'))
    result = camvirt_config(env)
    lines = result.stdout.splitlines()[1:]  # (the first says which config file)
    assert lines[0] == ('server:           PYRO:sting_camvirt_daemon_das1@10.2.6.173:9012 '
                        '(sting_camvirt_das1 from rockit.common)')
    assert ('control machines: STINGTCS (10.2.6.160, from rockit.common), STINGDAS1 (10.2.6.173, from '
            'rockit.common), STINGDAS2 (10.2.6.175, from rockit.common)') in lines
    assert 'log:              table camvirtd@sting_das1 on PYRO:log@10.2.6.160:9916 (machine STINGTCS) ' \
           '(observatory_log from {}; host STINGTCS from rockit.common)'.format(operator) in lines
    assert 'domain cam1: camera cam1 -> PYRO:sting_camera_daemon_1@10.2.6.165:9040 (sting_cam1 from ' \
           'rockit.common)' in lines
    assert 'domain cam2: camera cam2 -> PYRO:sting_camera_daemon_2@192.0.2.66:9041 (sting_cam2 from ' \
           'rockit.common; host STINGCameraVM2 from {})'.format(operator) in lines
    # An entry rockit.common offers that camvirtd cannot use is a warning, not a stop.
    assert result.stderr == ('camvirt: warning: rockit.common: daemons.broken: port 0 is not a TCP port (1-65535); '
                             'left out\n')

    summary = json.loads(camvirt_config(env, '--json').stdout)
    assert summary['sources'] == {
        'daemons': {'sting_camvirt_das1': 'rockit.common', 'sting_cam1': 'rockit.common',
                    'sting_cam2': 'rockit.common', 'observatory_log': str(operator)},
        'machines': {'STINGTCS': 'rockit.common', 'STINGDAS1': 'rockit.common', 'STINGDAS2': 'rockit.common',
                     'STINGCameraVM1': 'rockit.common', 'STINGCameraVM2': str(operator)}}
    assert summary['registry_warnings'] == [result.stderr[len('camvirt: warning: '):].strip()]


def test_config_without_rockit_common_says_shipped():
    env = env_with(None, CAMVIRTD_CONFIG_PATH=os.path.join(REPO, 'config', 'clasp_cmos.json'))
    result = camvirt_config(env)
    assert result.stderr == ''
    assert result.stdout.splitlines()[1] == ('server:           PYRO:clasp_camvirt_cmos_daemon@10.2.6.182:9040 '
                                             '(clasp_camvirt_cmos from shipped)')
    assert 'domain cmos: camera cmos -> PYRO:clasp_camera_cmos_daemon@10.2.6.185:9037 (clasp_camera_cmos from ' \
           'shipped)' in result.stdout.splitlines()

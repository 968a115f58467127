"""Admission: who may command, which domains a request names, one command at a time."""

import threading

import pytest

from rockit.camvirt.daemon.admission import CAMVIRTD_ITSELF, Admission, Refusal, select_domains
from rockit.camvirt.shared.constants import CommandStatus
from rockit.camvirt.shared.times import utc_iso


class Config:
    """The two things admission reads of a config."""
    domains = {'cam1': [], 'cam2': [], 'cam3': []}
    control_ips = frozenset(['10.2.6.160'])


@pytest.mark.parametrize('requested,expected', [
    (None, (['cam1', 'cam2', 'cam3'], [])),
    ('cam2', (['cam2'], [])),
    (['cam3', 'cam1'], (['cam1', 'cam3'], [])),  # config order, whatever order they were asked in
    (['cam1', 'cam9'], (['cam1'], ['cam9'])),
    ([1], ([], [1])),
    (5, ([], [5])),
])
def test_select_domains(requested, expected):
    assert select_domains(Config.domains, requested) == expected


def refusal(admission, *args, **kwargs):
    with pytest.raises(Refusal) as raised:
        admission.admit(*args, **kwargs)
    return raised.value.status, str(raised.value)


def test_callers_that_are_not_control_machines_are_refused_camvirtd_itself_is_not():
    admission = Admission(Config)
    assert refusal(admission, 'initialize', None, '10.9.9.9') == (
        CommandStatus.InvalidControlIP, 'refused initialize from 10.9.9.9: not a control machine')
    admission.release(admission.admit('initialize', None, CAMVIRTD_ITSELF))


@pytest.mark.parametrize('caller', [None, 'camvirtd itself', '', 'None'])
def test_a_caller_that_cannot_be_known_is_refused_and_no_string_is_camvirtd_itself(caller):
    status, text = refusal(Admission(Config), 'shutdown', None, caller)
    assert status == CommandStatus.InvalidControlIP
    assert ('caller unknown' if caller is None else 'not a control machine') in text


def test_unknown_domains_are_refused_naming_them():
    assert refusal(Admission(Config), 'shutdown', ['cam1', 'cam9'], '10.2.6.160') == (
        CommandStatus.UnknownDomain, "refused shutdown from 10.2.6.160: unknown domain: 'cam9'")


def test_one_command_at_a_time_and_its_domains_are_busy():
    admission = Admission(Config)
    command = admission.admit('initialize', ['cam2'], '10.2.6.160')
    assert admission.running is command and admission.busy_domains() == {'cam2'}
    code, line = refusal(admission, 'shutdown', ['cam1'], '10.2.6.160')
    # Which command, since when and whose: the log says what the wire's code 2 cannot.
    assert code == CommandStatus.Blocked and line == 'refused shutdown from 10.2.6.160: initialize is running: ' \
        'started {} by 10.2.6.160'.format(utc_iso(command.started))
    admission.release(command)
    assert admission.running is None and admission.busy_domains() == frozenset()


def test_a_waiting_admission_gets_the_lock_once_the_running_command_ends():
    admission = Admission(Config)
    command = admission.admit('shutdown', None, '10.2.6.160')
    threading.Timer(0.1, admission.release, args=(command,)).start()
    waited = admission.admit('initialize', ['cam1'], CAMVIRTD_ITSELF, wait=10)
    assert admission.running is waited
    admission.release(waited)

"""One vocabulary: one exception base for every error said in our own words, one rule for names."""

import re

import pytest

from rockit.camvirt.daemon.admission import Refusal
from rockit.camvirt.daemon.statefile import StateFileError
from rockit.camvirt.shared.config import ConfigError
from rockit.camvirt.shared.constants import NAME_PATTERN
from rockit.camvirt.shared.errors import CamvirtError
from rockit.camvirt.shared.jsonfile import JsonFileError
from rockit.camvirt.shared.registryfile import RegistryError
from rockit.camvirt.virt.connection import HypervisorUnavailable
from rockit.camvirt.virt.devices import DevicesAbsent


@pytest.mark.parametrize('error', [Refusal, StateFileError, ConfigError, JsonFileError, RegistryError,
                                   DevicesAbsent, HypervisorUnavailable])
def test_every_error_in_our_own_words_has_the_one_base(error):
    assert issubclass(error, CamvirtError)


@pytest.mark.parametrize('name,ok', [('cam1', True), ('a' * 64, True), ('sting_cam-1.b+c', True), ('', False),
                                     ('a' * 65, False), ('cam 1', False), ('cam1\n', False), ('cäm', False)])
def test_the_one_name_rule(name, ok):
    assert bool(re.search(NAME_PATTERN, name)) is ok

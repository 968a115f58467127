"""Times for people: local clock time with its age; anything that is no time shown as it came."""

import datetime
import os
import time

import pytest

from rockit.camvirt.shared.times import age_text, local_with_age, parse_iso

UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 11, 27, 13, 26, 44, tzinfo=UTC)


@pytest.fixture
def plus_three_hours():
    """This process in a time zone 3 h east of UTC (POSIX TZ: the sign is the other way round)."""
    old = os.environ.get('TZ')
    os.environ['TZ'] = 'UTC-3'
    time.tzset()
    yield
    if old is None:
        del os.environ['TZ']
    else:
        os.environ['TZ'] = old
    time.tzset()


@pytest.mark.parametrize('seconds, text', [(0, '0 s'), (59.9, '59 s'), (60, '1 min'), (3599, '59 min'),
                                           (3600, '1 h'), (2 * 3600 + 14 * 60 + 5, '2 h 14 min'),
                                           (86400, '1 d'), (3 * 86400 + 5 * 3600, '3 d 5 h'), (-5, '0 s')])
def test_age_text(seconds, text):
    assert age_text(seconds) == text


def test_local_time_with_age(plus_three_hours):
    assert local_with_age('2026-11-27T11:12:44+00:00', NOW) == '14:12:44 (2 h 14 min ago)'


def test_another_day_shows_its_date(plus_three_hours):
    assert local_with_age('2026-11-25T23:00:00+00:00', NOW) == '2026-11-26 02:00:00 (1 d 14 h ago)'


def test_a_daemon_clock_ahead_of_ours(plus_three_hours):
    assert local_with_age('2026-11-27T13:30:00+00:00', NOW) == '16:30:00 (in 3 min)'


def test_what_is_no_time_is_shown_as_it_came():
    assert local_with_age('T1', NOW) == 'T1'
    assert local_with_age(None, NOW) == ''
    assert parse_iso(12) is None
    assert parse_iso('2026-11-27T11:12:44').tzinfo is UTC  # no zone given: the wire's times are UTC

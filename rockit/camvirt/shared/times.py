"""Times as people read them: the local time of the machine running camvirt, with its age
("23:12 (2 h 14 min ago)"). report_status() and --json keep ISO 8601 UTC for programs."""

import datetime
import time


def utc_iso(timestamp):
    """A Unix time as report_status() and the state file give times: ISO 8601 UTC, to the second."""
    return datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc).isoformat(timespec='seconds')


def parse_iso(text):
    """An aware datetime from report_status()'s ISO 8601 strings; None for anything else."""
    if not isinstance(text, str):
        return None
    try:
        parsed = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    return parsed


def age_text(seconds):
    """'12 s', '4 min', '2 h 14 min', '3 d 5 h': two units at most, the larger first."""
    seconds = int(max(0, seconds))
    if seconds < 60:
        return '{} s'.format(seconds)
    minutes = seconds // 60
    if minutes < 60:
        return '{} min'.format(minutes)
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return '{} h {} min'.format(hours, minutes) if minutes else '{} h'.format(hours)
    days, hours = divmod(hours, 24)
    return '{} d {} h'.format(days, hours) if hours else '{} d'.format(days)


def local_clock(moment, now):
    """HH:MM:SS today, else with the date in front."""
    local, local_now = moment.astimezone(), now.astimezone()
    if local.date() == local_now.date():
        return local.strftime('%H:%M:%S')
    return local.strftime('%Y-%m-%d %H:%M:%S')


def local_with_age(iso, now=None):
    """'23:12:44 (2 h 14 min ago)' in this machine's time zone; the text as given if it is no time."""
    moment = parse_iso(iso)
    if moment is None:
        return str(iso) if iso is not None else ''
    now = now or datetime.datetime.fromtimestamp(time.time(), datetime.timezone.utc)
    age = (now - moment).total_seconds()
    if age < -1:  # the daemon's clock is ahead of ours
        return '{} (in {})'.format(local_clock(moment, now), age_text(-age))
    return '{} ({} ago)'.format(local_clock(moment, now), age_text(age))


def now_clock():
    """The local time now, for progress and watch lines."""
    return datetime.datetime.now().strftime('%H:%M:%S')

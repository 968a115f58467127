"""Refusals of callers, logged so that a flood cannot drown the log.

Every refused connection, message or command is counted per source address and interval. The first
few of each source in an interval are logged one by one; the rest only in a summary line per source
when the interval ends, e.g.
    refusals from 127.0.0.2 in the last 10 s: 32991 (initialize: not a control machine 32990,
    connection: idle 1), 32986 not logged one by one
journald drops lines beyond its rate limit (10,000 per 30 s by default), and real errors with them.
"""

import threading
import time

from ..shared.quoting import one_line

INTERVAL = 10.0
# Lines logged one by one per source and interval, and over all sources (many addresses, one attacker).
LINES_PER_SOURCE = 10
LINES_PER_INTERVAL = 50
# Sources named in the summaries of one interval; the rest are summed up in one line.
SUMMARISED_SOURCES = 20
# A source refused this often in one interval is flooding: the server stops serving it (see
# flooding()) until the interval ends, so that a flood costs camvirtd almost nothing.
FLOOD_REFUSALS = 200
# Sources counted apart in one interval (an IPv6 attacker has many addresses); beyond, one count.
COUNTED_SOURCES = 10000
OTHER_SOURCES = 'other sources'


class _Source:
    def __init__(self):
        self.count = 0
        self.logged = 0
        self.reasons = {}


class RefusalLog:
    """refused(source, reason, detail) from any thread; flush_due() from a loop that wakes up at
    least once a second (the Pyro server's), flush() at the end."""

    def __init__(self, log, interval=INTERVAL, clock=time.monotonic):
        self._log = log
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._sources = {}
        self._logged = 0
        self._started = clock()

    def refused(self, source, what, why, detail=''):
        """Counts one refusal of `what` (a connection, a message, a command's name) from `source` (an
        IP) because of `why` (a short fixed phrase: refusals are counted by what and why), and logs
        it unless its source or the interval has had its lines:
            refused <what> from <source>: <why>[: <detail>]
        `detail` may quote client values (logtext.quote); the line is escaped and cut again."""
        self.flush_due()
        reason = '{}: {}'.format(what, why)
        with self._lock:
            if source not in self._sources and len(self._sources) >= COUNTED_SOURCES:
                source = OTHER_SOURCES
            entry = self._sources.setdefault(source, _Source())
            entry.count += 1
            entry.reasons[reason] = entry.reasons.get(reason, 0) + 1
            if entry.logged >= LINES_PER_SOURCE or self._logged >= LINES_PER_INTERVAL:
                return
            entry.logged += 1
            self._logged += 1
        line = 'refused {} from {}: {}'.format(what, source, why)
        self._log.warning(one_line(line + ': ' + detail if detail else line))

    def flooding(self, source):
        """Whether `source` has been refused FLOOD_REFUSALS times or more in this interval."""
        entry = self._sources.get(source)
        return entry is not None and entry.count >= FLOOD_REFUSALS

    def flush_due(self):
        """Writes the summaries when the interval has ended."""
        if self._clock() - self._started >= self._interval:
            self.flush()

    def flush(self):
        """Writes a summary line for each source some of whose refusals were not logged one by one,
        and starts a new interval."""
        with self._lock:
            now = self._clock()
            sources, self._sources = self._sources, {}
            seconds, self._started = now - self._started, now
            self._logged = 0
        quiet = sorted(((s, e) for s, e in sources.items() if e.count > e.logged),
                       key=lambda item: -item[1].count)
        for source, entry in quiet[:SUMMARISED_SOURCES]:
            reasons = ', '.join('{} {}'.format(r, n) for r, n in sorted(entry.reasons.items(), key=lambda i: -i[1]))
            self._log.warning(one_line('refusals from {} in the last {:.0f} s: {} ({}), {} not logged one by one'
                                       .format(source, seconds, entry.count, reasons, entry.count - entry.logged)))
        rest = quiet[SUMMARISED_SOURCES:]
        if rest:
            self._log.warning('refusals from {} other sources in the last {:.0f} s: {}, not logged one by one'.format(
                len(rest), seconds, sum(e.count for _, e in rest)))

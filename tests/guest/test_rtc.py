"""The CMOS RTC shows host UTC time."""
import datetime
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tiny  # noqa: E402

SLACK = datetime.timedelta(seconds=3)


def test_rtc_matches_host_utc():
    before = datetime.datetime.now(datetime.timezone.utc)
    r = tiny.expect_ok("rtc")
    after = datetime.datetime.now(datetime.timezone.utc)
    got = tiny.lines(r, "rtc ")
    assert got, "no rtc line\n%r" % r
    m = re.match(r"rtc (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)$", got[0])
    assert m, "bad rtc line %r\n%r" % (got[0], r)
    t = datetime.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S").replace(
        tzinfo=datetime.timezone.utc)
    # Whole datetimes compare correctly across minute, hour and day rollovers.
    assert before - SLACK <= t <= after + SLACK, \
        "guest RTC %s outside host UTC %s .. %s\n%r" % (t, before, after, r)

"""The time as mitreden stores it: UTC, ISO 8601, to the second.

Its own module so that a command that only stamps an audit entry does not import the jobs.
"""

from datetime import UTC, datetime


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")

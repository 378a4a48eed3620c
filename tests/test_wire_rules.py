"""Edge cases of the pure wire functions left open by tests/test_wire.py (mutation survivors)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gtmhub_async.wire import parse_retry_after

NOW = datetime(2015, 10, 21, 7, 28, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        # RFC 5322's "-0000" zone: a time without a known offset, read as UTC.
        ("Wed, 21 Oct 2015 07:28:30 -0000", 30.0),
        # An explicit offset is kept, not overwritten with UTC.
        ("Wed, 21 Oct 2015 09:28:45 +0200", 45.0),
        ("Wed, 21 Oct 2015 07:28:30 GMT", 30.0),
    ],
)
def test_an_http_date_is_read_in_its_own_zone(value: str, seconds: float) -> None:
    assert parse_retry_after(value, now=NOW) == seconds

"""The ``timestamptz`` loader: PostgreSQL's text form -> exactly ``datetime.isoformat()`` in UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from psycopg.postgres import types

from mas_storage_postgres._isotime import IsoTimestamptzLoader

OID = types["timestamptz"].oid


def load(text: str) -> str:
    return IsoTimestamptzLoader(OID, None).load(text.encode())  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("sent", "instant"),
    [
        ("2025-10-20 10:00:00+00", datetime(2025, 10, 20, 10, tzinfo=UTC)),
        ("2025-10-20 10:00:00.12+00", datetime(2025, 10, 20, 10, 0, 0, 120000, tzinfo=UTC)),
        ("2025-10-20 10:00:00.000001+00", datetime(2025, 10, 20, 10, 0, 0, 1, tzinfo=UTC)),
        ("0001-01-01 00:00:00+00", datetime(1, 1, 1, tzinfo=UTC)),
        ("9999-12-31 23:59:59.999999+00", datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)),
    ],
)
def test_utc_text_becomes_isoformat(sent: str, instant: datetime) -> None:
    assert load(sent) == instant.isoformat()


@pytest.mark.parametrize(
    ("sent", "instant"),
    [
        # Another session time zone: psycopg's own loader, then UTC.
        ("2025-10-20 12:00:00+02", datetime(2025, 10, 20, 10, tzinfo=UTC)),
        ("2025-10-20 05:30:00.5-04:30", datetime(2025, 10, 20, 10, 0, 0, 500000, tzinfo=UTC)),
    ],
)
def test_other_offsets_are_converted_to_utc(sent: str, instant: datetime) -> None:
    assert load(sent) == instant.isoformat()
    assert datetime.fromisoformat(load(sent)).utcoffset() == timedelta(0)


def test_the_fast_path_agrees_with_the_fallback() -> None:
    # Every fraction length PostgreSQL may send (it trims trailing zeros).
    for digits in range(7):
        fraction = "" if digits == 0 else "." + "123456"[:digits]
        sent = f"2024-02-29 23:59:58{fraction}+00"
        expected = datetime.fromisoformat(sent.replace(" ", "T") + ":00")
        assert load(sent) == expected.astimezone(UTC).isoformat()

"""Timestamps read back through the adapter are ``isoformat()`` of the stored instant in UTC,
whatever the session's time zone (the fast ISO loader, or its fallback)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

import psycopg
import pytest

from mas_storage_postgres import PostgresAdapter

PARIS_SUMMER = timezone(timedelta(hours=2))
INSTANTS = [
    datetime(2025, 10, 20, 12, 0, 0, tzinfo=PARIS_SUMMER),  # no fraction
    datetime(2025, 10, 20, 12, 0, 0, 120000, tzinfo=PARIS_SUMMER),  # trailing zeros trimmed
    datetime(2025, 10, 20, 12, 0, 0, 1, tzinfo=PARIS_SUMMER),
]


def _with_time_zone(url: str, zone: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}options={quote(f'-c TimeZone={zone}')}"


@pytest.mark.parametrize("zone", ["UTC", "Asia/Kolkata"])
async def test_times_read_back_as_utc_isoformat(
    pg_url: str, raw: psycopg.AsyncConnection[Any], session_id: str, zone: str
) -> None:
    url = _with_time_zone(pg_url, zone)
    async with PostgresAdapter({"url": url, "pool_size": 2}) as l1:
        ids = [
            await l1.store(
                {
                    "session_id": session_id,
                    "turn_id": n,
                    "content": "x",
                    "created_at": at,
                    "ttl_expires_at": at + timedelta(days=3650),
                }
            )
            for n, at in enumerate(INSTANTS)
        ]
        found = await l1.search({"session_id": session_id, "sort": "turn_id", "order": "asc"})
        one = await l1.retrieve(ids[1])
    # What the server holds, read by a plain connection as datetimes.
    cur = await raw.execute(
        "SELECT created_at FROM active_context WHERE session_id = %s ORDER BY turn_id",
        (session_id,),
    )
    held = [row[0] for row in await cur.fetchall()]
    assert held == INSTANTS
    expected = [at.astimezone(UTC).isoformat() for at in INSTANTS]
    assert [row["created_at"] for row in found] == expected
    assert [row["ttl_expires_at"] for row in found] == [
        (at + timedelta(days=3650)).astimezone(UTC).isoformat() for at in INSTANTS
    ]
    assert one is not None and one["created_at"] == expected[1]

"""Idempotent facts: writes of ``working_memory`` rows that carry an ``idempotency_key``.

A fact has no natural key, so a caller retrying a write whose reply was lost would store it
twice. Migration 0002 gives facts an optional key, unique per session (a partial unique
index); these functions write keyed facts so that a replay is harmless:

* the INSERT skips a fact whose key its session already holds (``ON CONFLICT DO NOTHING``);
* a skipped fact is compared with the stored one (fact_type, content, confidence,
  source_turn_ids, metadata; not the times, which a retry computes afresh): the same fields
  give back the stored id, other fields a :class:`StorageDataError` naming the conflict.

The comparison is a second statement, as for turns (``add_turn(turn_id=...)``): its fresh
snapshot sees a fact that a concurrent writer committed after the INSERT began.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from mas_storage import StorageDataError

from . import _sql
from ._records import FactRow

__all__ = ["batch_has_keys", "conflict_message", "insert_keyed_fact", "move_fact_batch"]


def conflict_message(session_id: str, key: str | None, existing_id: int | None) -> str:
    """Why a keyed fact was refused: its key names another fact, or one that just went."""
    if existing_id is None:
        return (
            f"Fact {key!r} of session {session_id!r} was deleted while this call stored it "
            "again; call again"
        )
    return (
        f"Fact {key!r} of session {session_id!r} already exists (id {existing_id}) with other "
        "content (a session holds each idempotency_key once)"
    )


def batch_has_keys(prepared: Sequence[FactRow]) -> bool:
    """Whether any prepared fact has a key; a key repeated within one session is refused."""
    seen: dict[tuple[str, str], int] = {}
    for index, fact in enumerate(prepared):
        key = fact.idempotency_key
        if key is None:
            continue
        first = seen.setdefault((fact.session_id, key), index)
        if first != index:
            raise StorageDataError(
                f"Records {first} and {index} share idempotency_key {key!r} of session "
                f"{fact.session_id!r}: a batch may hold each key once per session"
            )
    return bool(seen)


async def insert_keyed_fact(conn: psycopg.AsyncConnection[Any], fact: FactRow) -> int:
    """Insert one prepared fact with a key; its id, or the id of the same fact stored before.

    One round trip when the key is new, two on a replay.
    """
    session_id, key = fact.session_id, fact.idempotency_key
    cur = await conn.execute(_sql.add_fact_keyed(), fact)
    row = await cur.fetchone()
    if row is not None:
        return int(row[0])
    same = (fact.fact_type, fact.content, fact.confidence, fact.source_turn_ids, fact.metadata)
    cur = await conn.execute(_sql.SAME_FACT, (*same, session_id, key))
    existing = await cur.fetchone()
    if existing is not None and existing[1]:
        return int(existing[0])
    raise StorageDataError(
        conflict_message(session_id, key, None if existing is None else existing[0])
    )


async def move_fact_batch(
    conn: psycopg.AsyncConnection[Any], ids: list[int], prepared: Sequence[FactRow]
) -> list[int]:
    """Move a batch already copied into ``_sql.FACT_BATCH`` into ``working_memory``.

    ``ids`` are the rows' reserved ids, in the caller's order. Facts whose key is taken are
    skipped; each must equal the stored one, whose id then replaces the reserved one. Any
    other fact raises :class:`StorageDataError` naming its record, and the caller's
    transaction rolls the whole batch back.
    """
    cur = await conn.execute(_sql.insert_fact_batch())
    inserted = await cur.fetchall()
    if len(inserted) == len(ids):
        return ids
    cur = await conn.execute(_sql.FACT_BATCH_CONFLICTS)
    position = {record_id: n for n, record_id in enumerate(ids)}
    out = list(ids)
    for reserved, existing, same in sorted(await cur.fetchall(), key=lambda r: position[r[0]]):
        n = position[reserved]
        if existing is None or not same:
            fact = prepared[n]
            raise StorageDataError(
                f"Record {n}: {conflict_message(fact.session_id, fact.idempotency_key, existing)}"
            )
        out[n] = existing
    return out

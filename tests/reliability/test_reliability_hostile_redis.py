"""Hostile input against RedisAdapter on the real server (issue #11).

500 generated calls per method that takes caller data: random dicts, wrong types, huge strings,
lone surrogates, NUL bytes, and Redis key-part injection (``*``, ``:turns``, CRLF command
smuggling, hash tags) in session ids and record ids. Each call returns or raises a StorageError;
a refused call leaves Redis as it was.

The module works in a private logical database (the first empty one of 15..8, flushed at the
end), so the state compared before and after each call is the whole keyspace: every key, its
``DUMP`` and whether it has a TTL. Accepted writes are checked against what Redis holds, then
the keyspace is reset to the seed sessions.

The adapter and the checker use the operator's ACL user (the admin outputs' ``redis_admin_url``):
every command on every key, so a key-part injection the adapter let through would show in the
keyspace, not be masked by the adapter user's ACL (that ACL is tested on its own in
``tests/integration/test_least_privilege.py``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis.asyncio as aioredis
from hostile import (
    INJECTIONS,
    HostileFixture,
    any_value,
    arguments,
    explore,
    hostile_session,
    hostile_text,
    huge_text,
    json_objects,
    maybe,
    records,
)
from hypothesis import strategies as st

from mas_storage_redis import RedisAdapter

NS = uuid.uuid4().hex[:8]
#: Seed sessions, one of them with the key scheme's own separators in it.
SEED_SESSIONS = (f"seed-{NS}", f"seed-{NS}:turns:7:\U0001f600")
SEED_TTL = 3600


@dataclass(repr=False)
class Rd(HostileFixture):
    """The module's adapter, a raw client on the same database, and the seed keyspace."""

    adapter: RedisAdapter
    raw: aioredis.Redis
    db: int
    seeds: dict[Any, list[Any]] = field(default_factory=dict)

    def keys(self) -> set[bytes]:
        return set(self.run(self.raw.keys("*")))

    def reset(self) -> None:
        """Back to the seed sessions only, with their original turns and a fresh TTL."""

        async def go() -> None:
            pipe = self.raw.pipeline(transaction=True)
            pipe.flushdb()
            for key, items in self.seeds.items():
                pipe.rpush(key, *items)
                pipe.expire(key, SEED_TTL)
            await pipe.execute()

        self.run(go())

    def seed_ids(self) -> list[str]:
        return [f"session:{sid}:turns:{turn}" for sid in SEED_SESSIONS for turn in (1, 2, 3)]


def _free_database(url: str) -> tuple[int, str]:
    """The first empty logical database of 15..8 (so the keyspace is all this module's)."""
    import redis

    for db in range(15, 7, -1):
        candidate = urlunsplit(urlsplit(url)._replace(path=f"/{db}"))
        client = redis.Redis.from_url(candidate)
        try:
            if client.dbsize() == 0:
                return db, candidate
        finally:
            client.close()
    pytest.fail("no empty Redis logical database among 15..8 for the hostile suite")


@pytest.fixture(autouse=True)
def _fresh(rd: Rd) -> None:
    """Each property starts from the seeds, whatever an earlier one left behind."""
    rd.fresh()


@pytest.fixture(scope="module")
def rd(stack_outputs: dict[str, Any], stack_admin: dict[str, Any]) -> Iterator[Rd]:
    db, url = _free_database(str(stack_admin["redis_admin_url"]))
    with hostile_session(stack_outputs, "redis") as session:
        loop = session.loop
        adapter = RedisAdapter({"url": url, "window_size": 10, "ttl_seconds": 600})
        raw = aioredis.Redis.from_url(url)
        loop.run(adapter.connect())

        async def snapshot() -> tuple[Any, ...]:
            keys = sorted(await raw.keys("*"))
            pipe = raw.pipeline(transaction=True)
            for key in keys:
                pipe.dump(key)
                pipe.pttl(key)
            found = await pipe.execute()
            return tuple((key, found[2 * i], found[2 * i + 1] == -1) for i, key in enumerate(keys))

        env = Rd(session, session.guard(snapshot), adapter, raw, db)
        for sid in SEED_SESSIONS:
            for turn in (1, 2, 3):
                loop.run(adapter.cache_turn(sid, turn, f"t{turn} \u202e\u05e9", {"n": turn}))
        env.seeds = {key: loop.run(raw.lrange(key, 0, -1))[::-1] for key in loop.run(raw.keys())}
        assert len(env.seeds) == len(SEED_SESSIONS)
        env.reset()
        try:
            yield env
        finally:
            loop.run(raw.flushdb())
            loop.run(adapter.disconnect())
            loop.run(raw.aclose())


# -- strategies --------------------------------------------------------------------------------

redis_text = hostile_text(injections=INJECTIONS["redis"])
session_ids = st.one_of(
    st.sampled_from(SEED_SESSIONS), st.text(min_size=1, max_size=40), redis_text
)
turn_ids = st.one_of(st.integers(-3, 20), st.integers(), st.sampled_from([2**63, 2**64, 10**30]))
contents = st.one_of(st.text(max_size=60), st.text(max_size=60), huge_text(), redis_text)
metadata = json_objects()
aware = st.datetimes(timezones=st.just(UTC))
timestamps = st.one_of(st.none(), aware, aware.map(datetime.isoformat), st.datetimes())
TURN_FIELDS = {
    "session_id": session_ids,
    "turn_id": turn_ids,
    "content": contents,
    "metadata": metadata,
    "timestamp": timestamps,
}


def record_ids(rd: Rd) -> st.SearchStrategy[Any]:
    built = st.builds(
        lambda sid, tid: f"session:{sid}:turns" + ("" if tid is None else f":{tid}"),
        session_ids,
        st.one_of(st.none(), turn_ids),
    )
    return st.one_of(st.sampled_from(rd.seed_ids()), built, redis_text, any_value())


# -- checks ------------------------------------------------------------------------------------


def check_cached(rd: Rd, rid: str, session_id: str, turn_id: int, content: str) -> None:
    """An accepted write: its one list holds the turn at the head; no other key appeared."""
    key = f"session:{session_id}:turns"
    assert rid == f"{key}:{turn_id}"
    assert rd.keys() <= set(rd.seeds) | {key.encode()}, "a write created an unexpected key"
    head = rd.run(rd.adapter.get_cached_turns(session_id, 1))
    # As JSON reads it back: a surrogate pair given as two code points becomes one character
    # (documented in mas_storage_redis._turns); every other string comes back unchanged.
    assert head and head[0]["content"] == json.loads(json.dumps(content))
    assert head[0]["turn_id"] == turn_id
    assert rd.run(rd.raw.ttl(key)) > 0, "a cached session has no TTL"


# -- the properties ----------------------------------------------------------------------------


def test_store(rd: Rd) -> None:
    def body(record: Any) -> None:
        out = rd.guard.attempt("store", lambda: rd.adapter.store(record), inputs=[record])
        if out.ok:
            check_cached(rd, out.value, record["session_id"], record["turn_id"], record["content"])
            rd.reset()

    explore("redis.store", records(TURN_FIELDS), body)
    rd.guard.assert_exercised("store")


def test_store_many(rd: Rd) -> None:
    batches = st.one_of(st.lists(records(TURN_FIELDS), max_size=4), any_value())

    def body(batch: Any) -> None:
        out = rd.guard.attempt("store_many", lambda: rd.adapter.store_many(batch), inputs=[batch])
        if out.ok:
            batch = list(batch)
            assert len(out.value) == len(batch)
            wanted = {f"session:{r['session_id']}:turns".encode() for r in batch}
            assert rd.keys() <= set(rd.seeds) | wanted
            for record in batch:
                key = f"session:{record['session_id']}:turns"
                assert rd.run(rd.raw.llen(key)) >= 1
            rd.reset()

    explore("redis.store_many", batches, body)
    rd.guard.assert_exercised("store_many")


def test_retrieve(rd: Rd) -> None:
    def body(record_id: Any) -> None:
        out = rd.guard.attempt("retrieve", lambda: rd.adapter.retrieve(record_id), pure=True)
        if out.ok and out.value is not None:
            assert record_id in rd.seed_ids()
            assert record_id == f"session:{out.value['session_id']}:turns:{out.value['turn_id']}"

    explore("redis.retrieve", record_ids(rd), body)
    rd.guard.assert_exercised("retrieve")


def test_search(rd: Rd) -> None:
    fields = {
        "session_id": session_ids,
        "limit": st.one_of(st.integers(0, 20), st.integers()),
        "offset": st.one_of(st.integers(-5, 5), st.integers()),
    }

    def body(query: Any) -> None:
        out = rd.guard.attempt("search", lambda: rd.adapter.search(query), pure=True)
        if out.ok:
            assert len(out.value) <= query.get("limit", 10)
            assert all(turn["session_id"] == query["session_id"] for turn in out.value)

    explore("redis.search", records(fields, omit=0.3), body)
    rd.guard.assert_exercised("search")


def test_delete(rd: Rd) -> None:
    def body(record_id: Any) -> None:
        out = rd.guard.attempt(
            "delete", lambda: rd.adapter.delete(record_id), pure=lambda v: v is False
        )
        if out.ok and out.value:
            sid = record_id.split(":", 1)[1].rsplit(":turns", 1)[0]
            assert sid in SEED_SESSIONS, f"delete({record_id!r}) removed something not seeded"
            rd.reset()

    explore("redis.delete", record_ids(rd), body)
    rd.guard.assert_exercised("delete")


def test_cache_turn(rd: Rd) -> None:
    args = records(
        {
            "session_id": session_ids,
            "turn_id": turn_ids,
            "content": contents,
            "metadata": metadata,
            "timestamp": timestamps,
            "ttl": st.one_of(
                st.none(), st.integers(1, 10**6), st.integers(), st.sampled_from([2**31, 2**62])
            ),
        },
        omit=0.05,
    )

    def body(kwargs: Any) -> None:
        if not isinstance(kwargs, dict):
            kwargs = {"session_id": kwargs, "turn_id": kwargs, "content": kwargs}
        kwargs = {str(k): v for k, v in kwargs.items() if str(k) in _CACHE_TURN_ARGS}
        out = rd.guard.attempt(
            "cache_turn", lambda: rd.adapter.cache_turn(**kwargs), inputs=[kwargs]
        )
        if out.ok:
            check_cached(rd, out.value, kwargs["session_id"], kwargs["turn_id"], kwargs["content"])
            if kwargs.get("ttl") is not None:
                assert rd.run(rd.raw.ttl(f"session:{kwargs['session_id']}:turns")) <= kwargs["ttl"]
            rd.reset()

    explore("redis.cache_turn", args, body)
    rd.guard.assert_exercised("cache_turn")


_CACHE_TURN_ARGS = {"session_id", "turn_id", "content", "metadata", "timestamp", "ttl"}


def test_get_cached_turns(rd: Rd) -> None:
    args = arguments(
        session_ids,
        st.one_of(st.none(), st.integers(0, 20), st.integers()),
        st.one_of(st.integers(-5, 5), st.integers()),
    )

    def body(example: Any) -> None:
        session, limit, offset = example
        out = rd.guard.attempt(
            "get_cached_turns",
            lambda: rd.adapter.get_cached_turns(session, limit, offset),
            pure=True,
        )
        if out.ok:
            assert all(turn["session_id"] == session for turn in out.value)
            expected = 3 if session in SEED_SESSIONS else 0
            window = list(range(expected))[offset:][: 10 if limit is None else limit]
            assert len(out.value) == len(window)

    explore("redis.get_cached_turns", args, body)
    rd.guard.assert_exercised("get_cached_turns")


def test_clear_session(rd: Rd) -> None:
    def body(session: Any) -> None:
        out = rd.guard.attempt(
            "clear_session", lambda: rd.adapter.clear_session(session), pure=lambda v: not v
        )
        if out.ok and out.value:
            assert session in SEED_SESSIONS
            rd.reset()

    explore("redis.clear_session", maybe(session_ids), body)
    rd.guard.assert_exercised("clear_session")


@pytest.mark.parametrize("method", ["get_session_size", "session_exists"])
def test_session_lookups(rd: Rd, method: str) -> None:
    def body(session: Any) -> None:
        out = rd.guard.attempt(method, lambda: getattr(rd.adapter, method)(session), pure=True)
        if out.ok:
            seeded = session in SEED_SESSIONS
            assert out.value == ((3 if seeded else 0) if method == "get_session_size" else seeded)

    explore(f"redis.{method}", maybe(session_ids), body)
    rd.guard.assert_exercised(method)


def test_refresh_ttl(rd: Rd) -> None:
    args = arguments(
        session_ids,
        st.one_of(st.none(), st.integers(1, 10**6), st.integers(), st.just(2**62)),
    )

    def body(example: Any) -> None:
        session, ttl = example
        out = rd.guard.attempt(
            "refresh_ttl", lambda: rd.adapter.refresh_ttl(session, ttl), pure=lambda v: not v
        )
        if out.ok and out.value:
            assert session in SEED_SESSIONS
            left = rd.run(rd.raw.ttl(f"session:{session}:turns"))
            assert 0 < left <= (600 if ttl is None else ttl)
            rd.reset()

    explore("redis.refresh_ttl", args, body)
    rd.guard.assert_exercised("refresh_ttl")


def test_no_secret_in_logs(rd: Rd) -> None:
    """Every record the calls above logged, at DEBUG, is free of the stack's secrets."""
    assert rd.session.watch.records > 0
    rd.session.watch.assert_clean()

"""The ACL lines the stacks give Redis (``mas_storage_redis._acl``): what each user may do."""

from __future__ import annotations

import hashlib

import pytest

from mas_storage_redis import (
    ADAPTER_COMMANDS,
    DISABLED_DEFAULT_USER,
    adapter_acl_rule,
    admin_acl_rule,
)

PASSWORD = "a-long-enough-password-1234"


def test_the_adapter_rule_names_its_commands_and_keys_only() -> None:
    rule = adapter_acl_rule("mas_app", PASSWORD).split()
    assert rule[:4] == ["user", "mas_app", "reset", "on"]
    assert f"#{hashlib.sha256(PASSWORD.encode()).hexdigest()}" in rule
    assert PASSWORD not in " ".join(rule)  # hashed, never in clear
    assert [t for t in rule if t.startswith("~")] == ["~session:*"]
    assert "resetchannels" in rule and not [t for t in rule if t.startswith("&")]
    granted = [t[1:] for t in rule if t.startswith("+")]
    assert granted == list(ADAPTER_COMMANDS)
    assert rule.index("-@all") < rule.index("+eval")  # everything off, then its commands
    assert not {"flushall", "flushdb", "keys", "config", "acl", "client"} & set(granted)


def test_extra_commands_are_added_for_a_cluster_client() -> None:
    rule = adapter_acl_rule("mas_app", PASSWORD, extra_commands=["cluster|slots"]).split()
    assert rule[-1] == "+cluster|slots"


def test_the_admin_rule_may_do_everything() -> None:
    rule = admin_acl_rule("admin", PASSWORD).split()
    assert rule[:4] == ["user", "admin", "reset", "on"]
    assert {"~*", "&*", "+@all"} <= set(rule)


@pytest.mark.parametrize(
    ("user", "password", "refusal"),
    [
        ("default", PASSWORD, "invalid ACL user name"),
        ("a b", PASSWORD, "invalid ACL user name"),
        ("", PASSWORD, "invalid ACL user name"),
        ("app", "short", "16\\+ characters"),
        ("app", "x " * 9, "without whitespace"),
    ],
)
def test_bad_users_and_passwords_are_refused(user: str, password: str, refusal: str) -> None:
    with pytest.raises(ValueError, match=refusal):
        adapter_acl_rule(user, password)
    with pytest.raises(ValueError, match=refusal):
        admin_acl_rule(user, password)


def test_the_default_user_is_off_without_password_but_keeps_its_permissions() -> None:
    """Nobody logs in as ``default`` (off, no ``nopass``, no password), yet the AOF replay, which
    runs as it, may re-run every acknowledged write (Redis re-checks the ACL at a replayed
    EXEC: a ``default`` without permissions loses the adapter's writes at every restart)."""
    rule = DISABLED_DEFAULT_USER.split()
    assert rule[:4] == ["user", "default", "reset", "off"]
    assert "on" not in rule and "nopass" not in rule
    assert not [t for t in rule if t.startswith((">", "#"))]  # no password at all
    assert {"~*", "&*", "+@all"} <= set(rule)

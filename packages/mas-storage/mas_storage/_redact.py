"""Secret redaction: one place that keeps passwords and API keys out of text."""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

__all__ = ["MASK", "mask_url", "redact"]

MASK = "***"
# Bounded quantifiers keep this linear: messages quote caller input, which may be huge, and an
# unbounded ``[^@\s]*`` would rescan to the end of the text from every "scheme://" it meets.
_USERINFO = re.compile(
    r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]{0,31}://)(?P<user>[^:/@\s]{0,256}):(?P<pw>[^@\s]{0,256})@"
)


def mask_url(url: str) -> str:
    """Return ``url`` with any password in its userinfo replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", url)
    if parts.password is None:
        return url
    # The host part as written: it may list several hosts (libpq's ``@h1:5432,h2:5433``),
    # which ``parts.port`` cannot parse.
    hosts = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:{MASK}@{hosts}"))


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Mask URL passwords and every literal secret (of 4+ characters) found in ``text``."""
    out = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    for secret in secrets:
        if secret and len(secret) >= 4:
            out = out.replace(secret, MASK)
    return out

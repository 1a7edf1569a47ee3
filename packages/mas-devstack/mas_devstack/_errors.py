"""Errors of the local stack.

DevstackError            anything the stack could not do (bad config, port taken, ...)
 └── ServiceStartError   one backend did not start; carries the tail of its log
"""

from __future__ import annotations


class DevstackError(RuntimeError):
    """The local stack could not do what was asked; the message says what and why."""


class ServiceStartError(DevstackError):
    """A backend failed to start or to answer; the message ends with the tail of its log."""

    def __init__(self, service: str, reason: str, log_tail: str = "") -> None:
        self.service = service
        self.reason = reason
        self.log_tail = log_tail
        message = f"{service} did not start: {reason}"
        if log_tail:
            message += f"\n--- last lines of its log ---\n{log_tail}"
        super().__init__(message)

    def __reduce__(self) -> tuple[type[ServiceStartError], tuple[str, str, str]]:
        return (type(self), (self.service, self.reason, self.log_tail))

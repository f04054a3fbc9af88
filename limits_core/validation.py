"""Checks applied to every key and cost before any state is touched."""

from __future__ import annotations

import re

from limits_core.errors import ConfigurationError

__all__ = ["MAX_KEY_BYTES", "check_cost", "check_key"]

#: The longest key accepted, in UTF-8 bytes.
MAX_KEY_BYTES = 512
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _show(key: str) -> str:
    return repr(key if len(key) <= 40 else key[:37] + "...")


def check_key(key: object) -> str:
    """Return ``key`` if it is a non-empty ``str`` of at most 512 UTF-8 bytes with no control
    characters; raise :class:`ConfigurationError` otherwise."""
    if not isinstance(key, str):
        raise ConfigurationError(f"a key must be a str, got {type(key).__name__}")
    if not key:
        raise ConfigurationError("a key must not be empty")
    # Fast path: up to 128 characters can never exceed 512 bytes, and printable ASCII holds
    # neither control characters nor lone surrogates.
    if len(key) > MAX_KEY_BYTES // 4 or not key.isascii():
        try:
            size = len(key.encode("utf-8"))
        except UnicodeEncodeError:
            raise ConfigurationError(f"key {_show(key)} is not valid Unicode text") from None
        if size > MAX_KEY_BYTES:
            raise ConfigurationError(
                f"key {_show(key)} is {size} UTF-8 bytes long; the maximum is {MAX_KEY_BYTES}"
            )
    if not key.isprintable() and _CONTROL.search(key):
        raise ConfigurationError(f"key {_show(key)} contains a control character")
    return key


def check_cost(cost: object, what: str = "cost") -> int:
    """Return ``cost`` if it is an ``int`` >= 1; raise :class:`ConfigurationError` otherwise."""
    if type(cost) is not int and (isinstance(cost, bool) or not isinstance(cost, int)):
        raise ConfigurationError(f"{what} must be an int, got {cost!r}")
    if cost < 1:
        raise ConfigurationError(f"{what} must be at least 1, got {cost!r}")
    return int(cost)

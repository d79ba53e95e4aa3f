"""Bounded text for messages: every value a diagnostic or error quotes goes through here."""

from __future__ import annotations

import reprlib

__all__ = ["quote", "shorten"]

_QUOTE_LIMIT = 80


def shorten(text: str, limit: int) -> str:
    """Return ``text``, or its start and how many characters were cut, within ``limit``."""
    if len(text) <= limit:
        return text
    keep = max(limit - 40, 0)
    return f"{text[:keep]}... [{len(text) - keep} more characters]"


def _bounded_repr() -> reprlib.Repr:
    bounded = reprlib.Repr()
    bounded.maxlevel = 3
    bounded.maxtuple = bounded.maxlist = bounded.maxset = bounded.maxfrozenset = 4
    bounded.maxdeque = bounded.maxarray = bounded.maxdict = 4
    bounded.maxstring = bounded.maxother = _QUOTE_LIMIT
    bounded.maxlong = 40
    return bounded


_REPR = _bounded_repr()


def quote(value: object, limit: int = _QUOTE_LIMIT) -> str:
    """Return a ``repr`` of ``value`` for a message, bounded in size and in work.

    Nested containers are cut after a few levels and items (``reprlib``), so a
    value with shared sub-lists (a YAML alias bomb) costs no more to quote than
    a small one; the result is at most ``limit`` characters plus a short note
    of how much was cut.
    """
    try:
        text = _REPR.repr(value)
    except Exception:  # noqa: BLE001 - e.g. an int too long to print: the type is enough
        text = f"<{type(value).__name__}>"
    return shorten(text, limit)

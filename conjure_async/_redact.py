"""The one redactor: API keys never reach an exception, its causes, a log line or a span.

Every exception the model clients and the Anthropic API helpers raise leaves
through :meth:`Redactor.guard`. The redactor knows the client's own key (so a
gateway token that looks like nothing in particular is found too) and also
removes anything shaped like an Anthropic key (``sk-ant-...``). It rewrites, in
place, what the exception shows: its message and ``args``, the response
``headers`` it keeps, its notes, and every link of its ``__cause__`` /
``__context__`` chain (what a stack trace, structlog's ``exc_info`` and
OpenTelemetry's exception event print). A foreign link that shows a secret is
replaced by a :class:`RedactedError` copy; a pydantic ``ValidationError`` link
is always rebuilt without its input values, because pydantic shortens long
inputs in the middle and the tail of a key would survive any text search.

Because the exception is cleaned before it propagates, the session's
``chat.failed`` log line, the ``ErrorEvent`` it streams and the span's
exception event and status (all built from ``str(error)`` and the trace) carry
no key: no logging or tracing configuration is needed for that.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from conjure_async._exceptions import REDACTED, ConjureError, ModelError, redact_key_shapes

__all__ = ["REDACTED", "RedactedError", "Redactor", "Secret", "validation_summary"]

_SECRET_HEADERS = frozenset({"x-api-key", "authorization", "proxy-authorization"})
_MAX_VALIDATION_ERRORS = 5


class Secret:
    """Holds a secret (an API key); its repr and str never show it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        """The secret itself (for the request header only)."""
        return self._value

    def __repr__(self) -> str:
        return "'**********'"

    __str__ = __repr__


class RedactedError(Exception):
    """Stands in, in a cause chain, for an exception whose text showed a secret.

    Its message is ``"<module>.<type>: <redacted text>"``; it keeps the
    original's traceback and (cleaned) chain.
    """


def validation_summary(exc: BaseException) -> str:
    """Describe a validation failure by location and problem, never by input value.

    A pydantic ``ValidationError`` becomes ``"content.0.tool_use.name: Field
    required; ..."`` (at most five problems); anything else its ``str``.
    """
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return str(exc)
    try:
        found = errors(include_input=False, include_url=False, include_context=False)
    except TypeError:
        return type(exc).__name__
    parts = [
        f"{'.'.join(str(p) for p in e.get('loc', ())) or '(message)'}: {e.get('msg', '')}"
        for e in found[:_MAX_VALIDATION_ERRORS]
    ]
    more = len(found) - _MAX_VALIDATION_ERRORS
    if more > 0:
        parts.append(f"and {more} more")
    return "; ".join(parts) or type(exc).__name__


class Redactor:
    """Removes secrets from text, headers and exceptions.

    Args:
        secrets: The exact secrets to remove (empty ones are ignored); strings
            shaped like Anthropic keys are always removed.
    """

    __slots__ = ("_secrets",)

    def __init__(self, *secrets: str | Secret | None) -> None:
        values = (s.get() if isinstance(s, Secret) else s for s in secrets)
        # longest first, so a secret containing another is replaced whole
        self._secrets = tuple(sorted({v for v in values if v}, key=len, reverse=True))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(<{len(self._secrets)} secret(s)>)"

    # -- text --------------------------------------------------------------------

    def text(self, value: str) -> str:
        """``value`` with every secret and every ``sk-ant-...`` string replaced."""
        for secret in self._secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return redact_key_shapes(value)

    def avoids(self, characters: str) -> bool:
        """Whether no secret holds any of ``characters``.

        Then no secret can match across them: text made of pieces joined by
        such characters is redacted piece by piece the same as whole (the
        ``sk-ant-`` shape holds none of ``[, ]`` either).
        """
        return not any(c in secret for secret in self._secrets for c in characters)

    def dirty(self, value: str) -> bool:
        """Whether ``value`` shows a secret."""
        return self.text(value) != value

    def headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        """Headers with secret values redacted (auth headers replaced whole)."""
        return {
            name: REDACTED if name.lower() in _SECRET_HEADERS else self.text(value)
            for name, value in headers.items()
        }

    # -- exceptions ----------------------------------------------------------------

    @contextmanager
    def guard(self) -> Iterator[None]:
        """Clean every exception leaving the block (:meth:`clean`); cancellation passes as is."""
        try:
            yield
        except Exception as exc:
            cleaned = self.clean(exc)
            if cleaned is exc:
                raise
            raise cleaned from cleaned.__cause__

    def clean(self, exc: Exception) -> Exception:
        """Redact ``exc`` in place and return it, or return a clean replacement.

        The library's own exceptions (and any whose text shows no secret) are
        cleaned in place, chain included. A foreign exception that shows a
        secret is replaced by a :class:`~conjure_async.ModelError` saying what
        it was, chained to its :class:`RedactedError` copy.
        """
        seen: set[int] = set()
        if _own(exc) or not self._shows_secret(exc):
            self._scrub(exc, seen)
            return exc
        copy = self._link(exc, seen)
        replacement = ModelError(str(copy))
        replacement.__cause__ = copy
        return replacement

    def _shows_secret(self, exc: BaseException) -> bool:
        texts = [str(exc), repr(exc)]
        attributes = getattr(exc, "__dict__", None)
        if attributes:
            texts.append(repr(attributes))
        return any(self.dirty(t) for t in texts)

    def _scrub(self, exc: BaseException, seen: set[int]) -> None:
        """Clean an exception in place (its text, headers, notes and chain)."""
        if id(exc) in seen:
            return
        seen.add(id(exc))
        exc.args = tuple(self.text(a) if isinstance(a, str) else a for a in exc.args)
        attributes = getattr(exc, "__dict__", {})
        for name, value in list(attributes.items()):
            if isinstance(value, str):
                attributes[name] = self.text(value)
            elif name == "headers" and isinstance(value, Mapping):
                attributes[name] = self.headers(value)
        notes = attributes.get("__notes__")
        if isinstance(notes, list):
            attributes["__notes__"] = [self.text(n) if isinstance(n, str) else n for n in notes]
        if isinstance(exc, BaseExceptionGroup):
            for member in exc.exceptions:
                if _own(member) or not self._shows_secret(member):
                    self._scrub(member, seen)
        self._relink(exc, seen)

    def _relink(self, exc: BaseException, seen: set[int]) -> None:
        """Put clean versions of ``exc``'s cause and context in place (each kept when clean)."""
        suppress = exc.__suppress_context__  # setting __cause__ would set it
        cause = self._link(exc.__cause__, seen)
        if cause is not exc.__cause__:
            exc.__cause__ = cause
        context = self._link(exc.__context__, seen)
        if context is not exc.__context__:
            exc.__context__ = context
        exc.__suppress_context__ = suppress

    def _link(self, link: BaseException | None, seen: set[int]) -> Any:
        """A clean version of one link of a chain (the link itself when possible)."""
        if link is None or id(link) in seen:
            return link
        if _own(link):
            self._scrub(link, seen)
            return link
        if callable(getattr(link, "errors", None)) and hasattr(link, "title"):
            rebuilt = self._without_input(link)
            if rebuilt is not None:
                seen.add(id(rebuilt))
                return rebuilt
        elif isinstance(link, json.JSONDecodeError) and self.dirty(link.doc):
            rebuilt_json = json.JSONDecodeError(link.msg, self.text(link.doc), 0)
            rebuilt_json.args = (self.text(str(link)),)
            rebuilt_json.pos, rebuilt_json.lineno, rebuilt_json.colno = (
                link.pos,
                link.lineno,
                link.colno,
            )
            return self._finish(rebuilt_json, link, seen)
        if not self._shows_secret(link):
            self._scrub_chain_only(link, seen)
            return link
        name = f"{type(link).__module__}.{type(link).__qualname__}"
        copy = RedactedError(f"{name}: {self.text(str(link))}")
        return self._finish(copy, link, seen)

    def _scrub_chain_only(self, link: BaseException, seen: set[int]) -> None:
        seen.add(id(link))
        self._relink(link, seen)

    def _finish(self, copy: BaseException, original: BaseException, seen: set[int]) -> Any:
        seen.add(id(original))
        seen.add(id(copy))
        copy.__traceback__ = original.__traceback__
        copy.__cause__ = self._link(original.__cause__, seen)
        copy.__context__ = self._link(original.__context__, seen)
        copy.__suppress_context__ = original.__suppress_context__
        return copy

    def _without_input(self, link: BaseException) -> BaseException | None:
        """A pydantic ``ValidationError`` rebuilt without input values (same type)."""
        try:
            from pydantic_core import ValidationError  # noqa: PLC0415 - only when needed

            if not isinstance(link, ValidationError):
                return None
            details: list[Any] = []
            for error in link.errors(include_url=False):
                detail: dict[str, Any] = {
                    "type": error["type"],
                    "loc": error["loc"],
                    "input": None,
                }
                if "ctx" in error:
                    detail["ctx"] = error["ctx"]
                details.append(detail)
            rebuilt = ValidationError.from_exception_data(link.title, details, hide_input=True)
        except Exception:  # noqa: BLE001 - an exotic error: fall back to a text copy
            return RedactedError(
                f"{type(link).__module__}.{type(link).__qualname__}: "
                f"{self.text(validation_summary(link))}"
            )
        if self.dirty(str(rebuilt)):  # a message built from the input (custom validators)
            return RedactedError(f"ValidationError: {self.text(validation_summary(link))}")
        rebuilt.__traceback__ = link.__traceback__
        return rebuilt


def _own(exc: BaseException) -> bool:
    """The library's own exceptions are cleaned in place (their type is kept)."""
    return isinstance(exc, ConjureError | RedactedError)


DEFAULT_REDACTOR = Redactor()
"""Removes strings shaped like Anthropic keys (for code that knows no key)."""

"""The session's meter: what goes around each model call for long conversations and cost.

Before a request (:meth:`Meter.before_request`): the prompt-caching
breakpoints, the ``context_management`` edits and their betas, and the usage
limits (a request that would go over is refused, ``max_tokens`` lowered to
the output left). After a response (:meth:`Meter.after_response`): the
billed tokens and their estimated cost per chat and per session, the
compaction blocks and applied context edits, reported as events. The rules
of the conversation stay in the turn engine; this is bookkeeping around it.

Also here, so the session module stays small: the session's
``count_tokens`` method and its ``cost`` and ``context_edits`` properties.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, Literal

from conjure_async._caching import CacheMarker, PromptCaching
from conjure_async._context import Compaction, ContextEditing, context_management
from conjure_async._exceptions import SessionStateError, UsageLimitError
from conjure_async._history import append_user, drop_unanswered_server_calls
from conjure_async._history_scan import HistoryScan
from conjure_async._limits import UsageLimits
from conjure_async.anthropic._api import merge_betas
from conjure_async.events import Compacted, ContextEdited, Event, Reply
from conjure_async.messages import MessagesRequest, MessagesResponse
from conjure_async.messages import _fast_construct as _build  # per chat: no validation
from conjure_async.pricing import Cost, ModelPrice, billed_tokens, price_for

if TYPE_CHECKING:
    from conjure_async._model_call import ModelOptions

__all__ = [
    "AUTO",
    "CHAT_USAGE_LIMITS",
    "CONTEXT_EDITS",
    "COST",
    "MEMBERS",
    "USAGE_LIMITS",
    "CachingOption",
    "Compaction",
    "ContextEditing",
    "Meter",
    "Prices",
    "UsageLimits",
    "count_tokens",
]

AUTO: Final = "auto"
"""``prompt_caching="auto"``: the model's own default (``model.prompt_caching``)."""

CachingOption = PromptCaching | None | Literal["auto"]
Prices = Mapping[str, ModelPrice]
Emit = Callable[[Event], Awaitable[None]]

_MILLION = 1_000_000
_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
    "cache_read_tokens",
    "input_usd",
    "output_usd",
    "cache_write_usd",
    "cache_read_usd",
    "requests",
    "unpriced_requests",
)


Snapshot = tuple[tuple[Any, ...], int]
"""A :class:`_Sum`'s values and requests sent, at one moment."""


class _Sum:
    """Running totals of billed tokens and dollars (a :class:`Cost` is built when read)."""

    __slots__ = ("sent", "values")

    def __init__(self, values: list[Any] | None = None, sent: int = 0) -> None:
        self.values: list[Any] = [0] * 5 + [0.0] * 4 + [0, 0] if values is None else values
        """In :data:`_FIELDS` order."""
        self.sent = sent
        """Requests sent (refused ones are not; failed ones are)."""

    def since(self, start: Snapshot) -> _Sum:
        """What was added after ``start`` (a :meth:`snapshot` taken earlier)."""
        values, sent = start
        return _Sum([a - b for a, b in zip(self.values, values, strict=True)], self.sent - sent)

    def snapshot(self) -> Snapshot:
        """The totals now, as plain values (the collector stops tracking such tuples)."""
        return tuple(self.values), self.sent

    @property
    def priced(self) -> bool:
        """Whether any response counted had a price."""
        v = self.values
        return bool(v[9] - v[10])

    def cost(self) -> Cost:
        values: dict[str, Any] = dict(zip(_FIELDS, self.values, strict=True))
        return _build(Cost, values)  # every field, of its type: no validation needed

    @property
    def input_total(self) -> int:
        v = self.values
        return int(v[0] + v[2] + v[3] + v[4])

    @property
    def output_total(self) -> int:
        return int(self.values[1])

    def dump(self) -> dict[str, Any]:
        return {"sent": self.sent, **dict(zip(_FIELDS, self.values, strict=True))}

    def load(self, data: Mapping[str, Any]) -> None:
        self.sent = int(data.get("sent", 0))
        self.values = [
            type(v)(data.get(name, v)) for name, v in zip(_FIELDS, self.values, strict=True)
        ]


class Meter:
    """Meters one session's model calls (see the module docstring).

    The options are plain attributes, read at each request: a session may
    change them between chats.
    """

    __slots__ = (
        "_chat_start",
        "_last_input",
        "_marker",
        "_rates",
        "_scan",
        "_session",
        "chat_usage_limits",
        "compaction",
        "compactions",
        "context_editing",
        "context_edits",
        "prices",
        "prompt_caching",
        "usage_limits",
    )

    def __init__(  # noqa: PLR0917 - the session passes its options in their order
        self,
        prompt_caching: CachingOption = AUTO,
        compaction: Compaction | None = None,
        context_editing: ContextEditing | None = None,
        usage_limits: UsageLimits | None = None,
        chat_usage_limits: UsageLimits | None = None,
        prices: Mapping[str, ModelPrice] | None = None,
    ) -> None:
        if not (
            prompt_caching is None
            or prompt_caching == AUTO
            or isinstance(prompt_caching, PromptCaching)
        ):
            raise TypeError("prompt_caching must be a PromptCaching, None or 'auto'")
        self.prompt_caching: CachingOption = prompt_caching
        self.compaction = compaction
        self.context_editing = context_editing
        self.usage_limits = usage_limits
        self.chat_usage_limits = chat_usage_limits
        self.prices = prices
        self.compactions = 0
        """Compactions the API reported in this session."""
        self.context_edits: list[dict[str, Any]] = []
        """Every context edit the API reported applied, in order."""
        self._session = _Sum()
        self._chat_start = _ZERO
        """The session's totals when the chat began (the chat's are the difference)."""
        self._marker: CacheMarker | None = None
        self._scan: HistoryScan | None = None  # made when caching or compaction needs it
        self._rates: dict[str, tuple[float, float, float, float, float] | None] = {}
        """Each model's rates in :attr:`prices`, looked up once (the default table's are
        shared by every session: :data:`_DEFAULT_RATES`)."""
        self._last_input = 0
        """Input tokens of the last request: the least the next one needs."""

    # -- the chat ------------------------------------------------------------

    def begin_chat(self) -> None:
        """A chat starts: its own totals start at zero."""
        self._chat_start = self._session.snapshot()

    @property
    def _chat(self) -> _Sum:
        """The chat's totals so far."""
        return self._session.since(self._chat_start)

    def finish_chat(self, reply: Reply) -> Reply:
        """The chat's reply, with its estimated cost."""
        chat = self._chat
        if not chat.priced:
            return reply
        # reply.model_copy(update={"cost": ...}), without pydantic's copy machinery
        return _build(type(reply), {**reply.__dict__, "cost": chat.cost()})

    @property
    def cost(self) -> Cost:
        """The session's estimated cost so far."""
        return self._session.cost()

    # -- before a request ------------------------------------------------------

    def caching(self, model: Any) -> PromptCaching | None:
        """The caching settings in effect for ``model``."""
        setting = self.prompt_caching
        if setting == AUTO:
            own = getattr(model, "prompt_caching", None)
            return own if isinstance(own, PromptCaching) else None
        return setting if isinstance(setting, PromptCaching) else None

    def amend(self, request: MessagesRequest, model: Any, *, mark: bool = True) -> None:
        """Add the breakpoints (with ``mark``), the edits and their betas to ``request``."""
        marker = None
        if mark:
            settings = self.caching(model)
            if settings is not None:
                marker = self._marker
                if marker is None or marker.settings is not settings:
                    marker = self._marker = CacheMarker(settings)
        compacted = self.compaction is not None
        if marker is not None or compacted:
            scan = self._scan
            if scan is None:
                scan = self._scan = HistoryScan()
            scan.shape(request, marker, compacted=compacted)
        managed = context_management(self.compaction, self.context_editing)
        if managed is not None:
            edits, betas = managed
            request.context_management = edits  # type: ignore[attr-defined]  # an extra field of the body
            request.betas = merge_betas(request.betas or [], betas)

    async def before_request(
        self, request: MessagesRequest, options: ModelOptions
    ) -> MessagesRequest:
        """Amend ``request`` and check the limits; count it as sent.

        Raises:
            UsageLimitError: The request would go over a limit (it is not sent).
        """
        model = options.model
        self.amend(request, model)
        session_limits, chat_limits = self.usage_limits, self.chat_usage_limits
        if session_limits is not None or chat_limits is not None:
            needed = await self._input_needed(request, model, (session_limits, chat_limits))
            for limits, scope, totals in (
                (session_limits, "session", self._session),
                (chat_limits, "chat", self._chat),
            ):
                if limits is not None:
                    _check(limits, scope, totals, request, needed)
        self._session.sent += 1
        return request

    @property
    def synchronous(self) -> bool:
        """No limit, compaction or context editing: :meth:`prepare` and :meth:`count` do it all.

        The model call then pays no coroutine for the meter (the hot path).
        """
        return (
            self.usage_limits is None
            and self.chat_usage_limits is None
            and self.compaction is None
            and self.context_editing is None
        )

    def prepare(self, request: MessagesRequest, options: ModelOptions) -> None:
        """:meth:`before_request` when :attr:`synchronous`: amend and count, nothing to check."""
        self.amend(request, options.model)
        self._session.sent += 1

    async def _input_needed(
        self,
        request: MessagesRequest,
        model: Any,
        limits: tuple[UsageLimits | None, UsageLimits | None],
    ) -> int:
        """The input tokens the request needs at least: counted, or the previous request's."""
        wanted = [x for x in limits if x is not None and x.max_input_tokens is not None]
        if not wanted:
            return 0
        counter = getattr(model, "count_tokens", None)
        if any(x.count_tokens for x in wanted) and callable(counter):
            return int(await counter(request))
        if self.compaction is not None or self.context_editing is not None:
            return 0  # the API may shrink the next request: no lower bound
        return self._last_input

    # -- after a response ------------------------------------------------------

    async def after_response(
        self, response: MessagesResponse, options: ModelOptions, emit: Emit | None
    ) -> None:
        """Count the response's billed tokens and cost; report compactions and edits."""
        extra = self.count(response, options)
        if self.compaction is not None or self.context_editing is not None:
            await self._context_events(response, extra, emit)

    def count(self, response: MessagesResponse, options: ModelOptions) -> dict[str, Any] | None:
        """Count the response's billed tokens and cost; return the usage's extra fields.

        All of :meth:`after_response` when :attr:`synchronous`.
        """
        usage = response.usage
        extra = usage.__pydantic_extra__
        written = usage.cache_creation_input_tokens or 0
        if extra or written:  # the cache writes' lifetime is the caching setting's
            settings = self.caching(options.model)
            ttl = settings.ttl if settings is not None else "5m"
        if extra:
            inp, out, w5, w1, read = billed_tokens(usage, ttl)
            self._last_input = _last_context(extra.get("iterations")) or (
                usage.input_tokens + (usage.cache_read_input_tokens or 0) + written
            )
        else:
            inp, out, read = (
                usage.input_tokens,
                usage.output_tokens,
                usage.cache_read_input_tokens or 0,
            )
            w5, w1 = ((0, written) if ttl == "1h" else (written, 0)) if written else (0, 0)
            self._last_input = inp + read + written
        model_name = options.model_name  # the model asked for (and billed)
        prices = self.prices
        known = _DEFAULT_RATES if prices is None else self._rates
        rates = known.get(model_name, _UNKNOWN)
        if rates is _UNKNOWN:
            price = price_for(model_name, prices)
            if len(known) >= 256:  # names made at run time: bounded
                known.clear()
            rates = known[model_name] = None if price is None else price.rates
        v = self._session.values  # the chat's totals are a difference from its start
        v[0] += inp
        v[1] += out
        v[9] += 1
        if w5 or w1:
            v[2] += w5
            v[3] += w1
        if read:
            v[4] += read
        if rates is None:
            v[10] += 1
        else:
            r_in, r_out, r_w5, r_w1, r_read = rates  # USD per million tokens
            v[5] += inp * r_in / _MILLION
            v[6] += out * r_out / _MILLION
            if w5 or w1:
                v[7] += (w5 * r_w5 + w1 * r_w1) / _MILLION
            if read:
                v[8] += read * r_read / _MILLION
        return extra

    async def _context_events(
        self, response: MessagesResponse, extra: dict[str, Any] | None, emit: Emit | None
    ) -> None:
        del extra
        for block in response.content:
            if block.type == "compaction":
                self.compactions += 1
                summary = getattr(block, "content", None)
                if emit is not None:
                    await emit(
                        Compacted._fast(
                            kind="compacted", summary=summary if isinstance(summary, str) else None
                        )
                    )
        managed = (response.__pydantic_extra__ or {}).get("context_management")
        applied = managed.get("applied_edits") if isinstance(managed, dict) else None
        if isinstance(applied, list) and applied:
            edits = [dict(edit) for edit in applied if isinstance(edit, dict)]
            self.context_edits.extend(edits)
            if emit is not None and edits:
                await emit(ContextEdited._fast(kind="context_edited", edits=edits))

    # -- state -------------------------------------------------------------------

    def dump(self) -> dict[str, Any]:
        """The session's totals as JSON (kept by ``dump_state``)."""
        return {
            "totals": self._session.dump(),
            "compactions": self.compactions,
            "context_edits": list(self.context_edits),
            "last_input": self._last_input,
        }

    def load(self, data: Any) -> None:
        """Resume the totals :meth:`dump` wrote (nothing for a state saved without them).

        Raises:
            SessionStateError: The saved totals are malformed.
        """
        if data is None:
            return
        try:
            self._load(data)
        except (TypeError, ValueError) as exc:
            raise SessionStateError(f"invalid session state: meter: {exc}") from exc

    def _load(self, data: Any) -> None:
        if not isinstance(data, Mapping):
            raise TypeError(f"an object was expected, not {type(data).__name__}")
        totals = data.get("totals")
        if totals is not None and not isinstance(totals, Mapping):
            raise TypeError("totals must be an object")
        edits = data.get("context_edits") or []
        if not isinstance(edits, list):
            raise TypeError("context_edits must be a list")
        if totals is not None:
            self._session.load(totals)
        self.compactions = int(data.get("compactions", 0))
        self.context_edits = [dict(e) for e in edits if isinstance(e, dict)]
        self._last_input = int(data.get("last_input", 0))


_UNKNOWN: Any = object()
_ZERO: Final[Snapshot] = (tuple(_Sum().values), 0)
_DEFAULT_RATES: dict[str, tuple[float, float, float, float, float] | None] = {}
"""Rates from :data:`~conjure_async.pricing.PRICES` by model name, shared by sessions."""


def _last_context(iterations: Any) -> int:
    """The input of the last sampling pass of a response (its context size), or 0."""
    if not isinstance(iterations, list):
        return 0
    for item in reversed(iterations):
        if isinstance(item, dict) and item.get("type", "message") == "message":
            return sum(
                int(item.get(key) or 0)
                for key in (
                    "input_tokens",
                    "cache_read_input_tokens",
                    "cache_creation_input_tokens",
                )
            )
    return 0


def _check(
    limits: UsageLimits, scope: str, totals: _Sum, request: MessagesRequest, needed: int
) -> None:
    """Refuse ``request`` if it goes over ``limits``; lower its ``max_tokens`` to what is left."""
    if limits.max_requests is not None and totals.sent + 1 > limits.max_requests:
        raise UsageLimitError(
            "requests", scope, maximum=limits.max_requests, used=totals.sent, needed=1
        )
    if limits.max_input_tokens is not None:
        used = totals.input_total
        if used + max(needed, 1) > limits.max_input_tokens:
            raise UsageLimitError(
                "input_tokens",
                scope,
                maximum=limits.max_input_tokens,
                used=used,
                needed=max(needed, 1),
            )
    if limits.max_output_tokens is not None:
        left = limits.max_output_tokens - totals.output_total
        if left < 1:
            raise UsageLimitError(
                "output_tokens",
                scope,
                maximum=limits.max_output_tokens,
                used=totals.output_total,
                needed=1,
            )
        request.max_tokens = min(request.max_tokens, left)


# -- the session's members (assigned in Session's class body) ----------------------------


async def count_tokens(self: Any, message: str | Sequence[dict[str, Any]] | None = None) -> int:
    """Count the input tokens of the next request (``POST /v1/messages/count_tokens``).

    The request is the one the session would send now: the history, the
    system prompt, the tools and what the backends add (the hosted code
    execution tool; its ``container`` is not a field of the count), with the
    session's context management. With ``message``, the count includes it
    as the next user message, as :meth:`chat` would send it. Free, with its
    own rate limit; an estimate, as the API says.

    Args:
        self: The session.
        message: A prospective next user message (text or content blocks).

    Raises:
        TypeError: The model cannot count tokens (``AnthropicModel`` and
            ``AnthropicSDKModel`` can; any model with an async
            ``count_tokens(request) -> int`` does).
        ValueError: The history is empty and no ``message`` is given.
        SessionStateError: The session is not open.
        APIError: The API refused or failed.
    """
    self._ensure_open()
    counter = getattr(self.model, "count_tokens", None)
    if not callable(counter):
        raise TypeError(
            f"{type(self.model).__name__} cannot count tokens (it has no count_tokens method)"
        )
    request: MessagesRequest = self._models.request(self)
    if message is not None:
        messages = list(request.messages)
        drop_unanswered_server_calls(messages)
        append_user(messages, message if isinstance(message, str) else list(message))
        request.messages = messages
    if not request.messages:
        raise ValueError("count_tokens() of an empty conversation needs a message")
    self._meter.amend(request, self.model, mark=False)
    return int(await counter(request))


def _cost(self: Any) -> Cost:
    return self._meter.cost  # type: ignore[no-any-return]  # the session's Meter


def _context_edits(self: Any) -> list[dict[str, Any]]:
    return list(self._meter.context_edits)


COST = property(
    _cost,
    doc="Estimated cost of every model call of this session (tokens as billed, and dollars).",
)
CONTEXT_EDITS = property(
    _context_edits,
    doc="Every context edit the API reported applied in this session, in order.",
)


def _limits_property(name: str, doc: str) -> property:
    def get(self: Any) -> UsageLimits | None:
        return getattr(self._meter, name)  # type: ignore[no-any-return]  # the Meter's option

    def set_(self: Any, value: UsageLimits | None) -> None:
        if value is not None and not isinstance(value, UsageLimits):
            raise TypeError(f"{name} must be UsageLimits or None, not {type(value).__name__}")
        setattr(self._meter, name, value)

    return property(get, set_, doc=doc)


USAGE_LIMITS = _limits_property(
    "usage_limits", "Limits for the whole session (may be changed between chats)."
)
CHAT_USAGE_LIMITS = _limits_property(
    "chat_usage_limits", "Limits for each chat (may be changed between chats)."
)

MEMBERS = (COST, CONTEXT_EDITS, count_tokens, USAGE_LIMITS, CHAT_USAGE_LIMITS)
"""The session's ``cost``, ``context_edits``, ``count_tokens`` and two limits, in that order."""

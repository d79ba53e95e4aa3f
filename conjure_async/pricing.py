"""What a conversation costs: one price table, and the estimate built from it.

:data:`PRICES` holds the Claude API list prices in US dollars per million
tokens, as read on :data:`PRICES_AS_OF` from
https://platform.claude.com/docs/en/about-claude/pricing (and the model pages
for the newest models). They are an *estimate*: batch discounts, regional
(``inference_geo``) and fast-mode surcharges, long-context tiers and your own
contract are not applied. Override or add models per session::

    from conjure_async.pricing import PRICES, ModelPrice

    prices = {**PRICES, "my-gateway-model": ModelPrice(input=2.0, output=10.0)}
    async with Session(backend, model=model, prices=prices) as session:
        reply = await session.chat("Hi")
    print(reply.cost.total_usd, session.cost.total_usd)

A model name matches the longest key it starts with, so
``claude-sonnet-4-5-20250929`` is priced as ``claude-sonnet-4-5``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from pydantic import BaseModel, ConfigDict

__all__ = [  # noqa: RUF022 - plain sorted(), as the public-API tests check
    "Cost",
    "ModelPrice",
    "PRICES",
    "PRICES_AS_OF",
    "estimate_cost",
    "price_for",
]

PRICES_AS_OF: Final = "2026-11-28"
"""The date :data:`PRICES` was read from Anthropic's pricing page."""

_MILLION = 1_000_000


class ModelPrice(BaseModel):
    """One model's prices, in US dollars per million tokens.

    The cache prices default to the API's multipliers of ``input``: a
    5-minute write costs 1.25x, a 1-hour write 2x, a read 0.1x (some models
    read cheaper; give ``cache_read`` then).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    input: float
    """Uncached input tokens."""
    output: float
    """Output tokens."""
    cache_write_5m: float | None = None
    """Input tokens written to the cache with a 5-minute lifetime (default 1.25x ``input``)."""
    cache_write_1h: float | None = None
    """Input tokens written to the cache with a 1-hour lifetime (default 2x ``input``)."""
    cache_read: float | None = None
    """Input tokens read from the cache (default 0.1x ``input``)."""

    @property
    def rates(self) -> tuple[float, float, float, float, float]:
        """``(input, output, cache_write_5m, cache_write_1h, cache_read)``, defaults filled in."""
        return (
            self.input,
            self.output,
            self.input * 1.25 if self.cache_write_5m is None else self.cache_write_5m,
            self.input * 2 if self.cache_write_1h is None else self.cache_write_1h,
            self.input * 0.1 if self.cache_read is None else self.cache_read,
        )


def _p(inp: float, w5: float, w1: float, read: float, out: float) -> ModelPrice:
    return ModelPrice(input=inp, output=out, cache_write_5m=w5, cache_write_1h=w1, cache_read=read)


PRICES: Mapping[str, ModelPrice] = {
    # Model ids of the 5.x generation are as the pricing and model pages name them;
    # claude-opus-5-5, claude-sonnet-5-5, claude-fable-5-1 and claude-mythos-5-1 are
    # taken from those pages' addresses. Haiku 5.5 (two tiers by prompt size, read
    # price unconfirmed) is left out: add it with ``prices=`` when you use it.
    "claude-fable-5-1": _p(10, 12.50, 20, 0.25, 50),
    "claude-mythos-5-1": _p(10, 12.50, 20, 0.25, 50),
    "claude-fable-5": _p(10, 12.50, 20, 1.00, 50),
    "claude-mythos-5": _p(10, 12.50, 20, 1.00, 50),
    "claude-opus-5-5": _p(4, 5, 8, 0.20, 20),
    "claude-opus-5": _p(5, 6.25, 10, 0.50, 25),
    "claude-opus-4-8": _p(5, 6.25, 10, 0.50, 25),
    "claude-opus-4-7": _p(5, 6.25, 10, 0.50, 25),
    "claude-opus-4-6": _p(5, 6.25, 10, 0.50, 25),
    "claude-opus-4-5": _p(5, 6.25, 10, 0.50, 25),
    "claude-opus-4-1": _p(15, 18.75, 30, 1.50, 75),
    "claude-opus-4": _p(15, 18.75, 30, 1.50, 75),
    "claude-sonnet-5-5": _p(2, 2.50, 4, 0.20, 10),
    "claude-sonnet-5": _p(2, 2.50, 4, 0.20, 10),
    "claude-sonnet-4-6": _p(3, 3.75, 6, 0.30, 15),
    "claude-sonnet-4-5": _p(3, 3.75, 6, 0.30, 15),
    "claude-sonnet-4": _p(3, 3.75, 6, 0.30, 15),
    "claude-haiku-4-5": _p(1, 1.25, 2, 0.10, 5),
    "claude-3-5-haiku": _p(0.80, 1, 1.60, 0.08, 4),
}
"""List prices per model id (USD per million tokens), read on :data:`PRICES_AS_OF`."""


def price_for(model: str, prices: Mapping[str, ModelPrice] | None = None) -> ModelPrice | None:
    """The price of ``model``: its own entry, else the longest key it starts with, else ``None``."""
    table = PRICES if prices is None else prices
    price = table.get(model)
    if price is not None:
        return price
    best = ""
    for key in table:
        if len(key) > len(best) and model.startswith(key):
            best = key
    return table[best] if best else None


class Cost(BaseModel):
    """An estimated cost in US dollars, with the billed tokens it comes from.

    The tokens are what the API bills: a compaction's own sampling pass is
    included (the response's top-level ``usage`` leaves it out), cache
    writes are split by lifetime. Responses of a model without a price are
    counted in :attr:`unpriced_requests` and left out of the figures.
    Costs add up with ``+``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    input_usd: float = 0.0
    """Uncached input."""
    output_usd: float = 0.0
    """Output."""
    cache_write_usd: float = 0.0
    """Cache writes (5-minute and 1-hour)."""
    cache_read_usd: float = 0.0
    """Cache reads."""
    input_tokens: int = 0
    """Uncached input tokens."""
    output_tokens: int = 0
    """Output tokens."""
    cache_write_5m_tokens: int = 0
    """Input tokens written to the cache for 5 minutes."""
    cache_write_1h_tokens: int = 0
    """Input tokens written to the cache for 1 hour."""
    cache_read_tokens: int = 0
    """Input tokens read from the cache."""
    requests: int = 0
    """Model responses counted."""
    unpriced_requests: int = 0
    """Responses whose model has no price (their tokens are counted, not their cost)."""

    @property
    def total_usd(self) -> float:
        """The whole estimate: input, output, cache writes and reads."""
        return self.input_usd + self.output_usd + self.cache_write_usd + self.cache_read_usd

    @property
    def total_input_tokens(self) -> int:
        """Every input token processed: uncached, written to and read from the cache."""
        return (
            self.input_tokens
            + self.cache_write_5m_tokens
            + self.cache_write_1h_tokens
            + self.cache_read_tokens
        )

    def __add__(self, other: Cost) -> Cost:
        values = {name: getattr(self, name) + getattr(other, name) for name in Cost.model_fields}
        return Cost.model_construct(**values)


def _count(value: Any) -> int:
    return value if isinstance(value, int) and value > 0 else 0


def billed_tokens(usage: Any, default_ttl: str = "5m") -> tuple[int, int, int, int, int]:
    """``(input, output, write_5m, write_1h, read)`` billed for one response's usage.

    ``usage`` is a :class:`~conjure_async.messages.Usage` or its dict. With
    ``iterations`` (compaction), their sum; otherwise the top-level counts.
    Cache writes without a ``cache_creation`` split count at ``default_ttl``.
    """
    data: Mapping[str, Any] = usage if isinstance(usage, Mapping) else _usage_dict(usage)
    iterations = data.get("iterations")
    parts = (
        [i for i in iterations if isinstance(i, Mapping)]
        if isinstance(iterations, list) and iterations
        else [data]
    )
    inp = out = w5 = w1 = read = 0
    for part in parts:
        inp += _count(part.get("input_tokens"))
        out += _count(part.get("output_tokens"))
        read += _count(part.get("cache_read_input_tokens"))
        written = _count(part.get("cache_creation_input_tokens"))
        split = part.get("cache_creation")
        if isinstance(split, Mapping) and written:
            one_hour = _count(split.get("ephemeral_1h_input_tokens"))
            w1 += one_hour
            w5 += written - one_hour if written >= one_hour else 0
        elif default_ttl == "1h":
            w1 += written
        else:
            w5 += written
    return inp, out, w5, w1, read


def _usage_dict(usage: Any) -> dict[str, Any]:
    data = dict(getattr(usage, "__dict__", {}))
    extra = getattr(usage, "__pydantic_extra__", None)
    if extra:
        data.update(extra)
    return data


def estimate_cost(
    usage: Any,
    model: str,
    prices: Mapping[str, ModelPrice] | None = None,
    *,
    default_ttl: str = "5m",
) -> Cost:
    """The cost of one response's ``usage`` (a ``Usage`` or its dict) for ``model``.

    Args:
        usage: The response's usage (``iterations`` and the ``cache_creation``
            split are read when present).
        model: The model that answered (priced with :func:`price_for`).
        prices: The price table (default :data:`PRICES`).
        default_ttl: The lifetime of cache writes the usage does not split.
    """
    inp, out, w5, w1, read = billed_tokens(usage, default_ttl)
    price = price_for(model, prices)
    tokens = {
        "input_tokens": inp,
        "output_tokens": out,
        "cache_write_5m_tokens": w5,
        "cache_write_1h_tokens": w1,
        "cache_read_tokens": read,
        "requests": 1,
    }
    if price is None:
        return Cost.model_construct(**{**_ZERO, **tokens, "unpriced_requests": 1})
    r_in, r_out, r_w5, r_w1, r_read = price.rates
    return Cost.model_construct(
        **{
            **_ZERO,
            **tokens,
            "input_usd": inp * r_in / _MILLION,
            "output_usd": out * r_out / _MILLION,
            "cache_write_usd": (w5 * r_w5 + w1 * r_w1) / _MILLION,
            "cache_read_usd": read * r_read / _MILLION,
        }
    )


_ZERO: dict[str, Any] = {name: field.default for name, field in Cost.model_fields.items()}

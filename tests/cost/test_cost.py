"""Cost estimates per reply and per session, from the one price table (overridable)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from conjure_async import Cost, PromptCaching, Session, SessionStateError
from conjure_async._meter import Meter
from conjure_async.events import Reply
from conjure_async.messages import Usage
from conjure_async.models import AnthropicModel
from conjure_async.pricing import PRICES, PRICES_AS_OF, ModelPrice, estimate_cost, price_for
from conjure_async.testing import FakeAnthropicServer, ScriptedModel, text_response
from tests.cost.support import SYSTEM, lookup_backend, tool_loop

pytestmark = pytest.mark.anyio

ModelFactory = Callable[..., AnthropicModel]


def _expected(cost: Cost, price: ModelPrice) -> float:
    r_in, r_out, r_w5, r_w1, r_read = price.rates
    return (
        cost.input_tokens * r_in
        + cost.output_tokens * r_out
        + cost.cache_write_5m_tokens * r_w5
        + cost.cache_write_1h_tokens * r_w1
        + cost.cache_read_tokens * r_read
    ) / 1_000_000


async def test_reply_and_session_cost_come_from_the_price_table(
    server: FakeAnthropicServer, model_factory: ModelFactory
) -> None:
    """Each reply's cost prices its billed tokens; the session's adds up the replies."""
    server.queue(tool_loop(2), tool_loop(2), tool_loop(2), text_response("Done."))
    model = model_factory(model="claude-opus-4-8")
    async with Session(lookup_backend(), model=model, system=SYSTEM) as session:
        first = await session.chat("Check")
        second = await session.chat("Anything else?")
        total = session.cost

    price = PRICES["claude-opus-4-8"]
    assert first.cost is not None
    assert second.cost is not None
    assert first.cost.requests == 3
    assert first.cost.cache_read_tokens == first.usage.cache_read_input_tokens
    assert first.cost.cache_write_5m_tokens == first.usage.cache_creation_input_tokens
    assert first.cost.input_tokens == first.usage.input_tokens
    assert first.cost.output_tokens == first.usage.output_tokens
    assert first.cost.total_usd == pytest.approx(_expected(first.cost, price))
    assert total.total_usd == pytest.approx(first.cost.total_usd + second.cost.total_usd)
    assert total.requests == 4
    assert total.cache_read_usd > 0


async def test_one_hour_writes_are_priced_at_the_one_hour_rate(
    server: FakeAnthropicServer, model_factory: ModelFactory
) -> None:
    """Cache writes reported as 1-hour cost 2x input, not 1.25x."""
    server.queue(text_response("Hi."))
    model = model_factory(model="claude-sonnet-4-6")
    async with Session(
        model=model, system=SYSTEM, prompt_caching=PromptCaching(ttl="1h")
    ) as session:
        reply = await session.chat("Hi")

    assert reply.cost is not None
    assert reply.cost.cache_write_1h_tokens > 0
    assert reply.cost.cache_write_5m_tokens == 0
    assert reply.cost.cache_write_usd == pytest.approx(reply.cost.cache_write_1h_tokens * 6e-6)


async def test_prices_are_overridable_per_session(
    server: FakeAnthropicServer, model_factory: ModelFactory
) -> None:
    """``Session(prices=...)`` prices a model the table lacks, or overrides one."""
    server.queue(text_response("Hi."), text_response("Hi."))
    gateway = model_factory(model="my-gateway-model")
    async with Session(model=gateway) as session:
        unpriced = await session.chat("Hi")
        unpriced_total = session.cost
    prices = {**PRICES, "my-gateway-model": ModelPrice(input=1.0, output=2.0)}
    async with Session(model=model_factory(model="my-gateway-model"), prices=prices) as session:
        priced = await session.chat("Hi")

    assert unpriced.cost is None
    assert unpriced_total.unpriced_requests == 1
    assert unpriced_total.total_usd == 0
    assert unpriced_total.input_tokens == unpriced.usage.input_tokens
    assert priced.cost is not None
    assert priced.cost.total_usd == pytest.approx(
        (priced.cost.input_tokens * 1.0 + priced.cost.output_tokens * 2.0) / 1_000_000
    )


async def test_a_model_without_a_price_has_no_reply_cost() -> None:
    """A scripted model's replies carry no cost; its tokens are still counted."""
    model = ScriptedModel([text_response("Hi.", usage={"input_tokens": 7, "output_tokens": 3})])
    async with Session(model=model) as session:
        reply = await session.chat("Hi")

    assert reply.cost is None
    assert (session.cost.input_tokens, session.cost.output_tokens) == (7, 3)
    assert session.cost.unpriced_requests == 1


async def test_the_session_cost_survives_dump_and_restore(
    server: FakeAnthropicServer, model_factory: ModelFactory
) -> None:
    """``dump_state``/``restore`` keep the session's cost and request count."""
    server.queue(text_response("One."), text_response("Two."))
    async with Session(model=model_factory(model="claude-haiku-4-5")) as session:
        await session.chat("One")
        state = session.dump_state()
        before = session.cost
    restored = Session.restore(state, model=model_factory(model="claude-haiku-4-5"))
    async with restored:
        await restored.chat("Two")
        after = restored.cost

    assert before.requests == 1
    assert after.requests == 2
    assert after.total_usd > before.total_usd > 0


def test_price_lookup_takes_the_longest_matching_prefix() -> None:
    """A dated model id is priced as its family; an unknown one has no price."""
    assert price_for("claude-opus-4-1-20250805") == PRICES["claude-opus-4-1"]
    assert price_for("claude-opus-4-20250514") == PRICES["claude-opus-4"]
    assert price_for("claude-sonnet-5-5") == PRICES["claude-sonnet-5-5"]
    assert price_for("gpt-4o") is None
    assert PRICES_AS_OF == "2026-11-28"


def test_compaction_iterations_are_billed() -> None:
    """With ``iterations`` (compaction), the estimate sums every pass, not the top level."""
    usage = Usage.model_validate(
        {
            "input_tokens": 100,
            "output_tokens": 10,
            "iterations": [
                {"type": "compaction", "input_tokens": 60_000, "output_tokens": 900},
                {"type": "message", "input_tokens": 100, "output_tokens": 10},
            ],
        }
    )
    cost = estimate_cost(usage, "claude-sonnet-4-6")

    assert (cost.input_tokens, cost.output_tokens) == (60_100, 910)
    assert cost.total_usd == pytest.approx((60_100 * 3 + 910 * 15) / 1_000_000)


@pytest.mark.parametrize(
    "meter",
    [
        "garbage",
        {"totals": {"requests": "many"}},
        {"totals": ["not", "an", "object"]},
        {"context_edits": "none"},
    ],
)
def test_a_malformed_saved_meter_is_a_session_state_error(meter: object) -> None:
    """Hostile meter totals in a saved state: ``SessionStateError``, not a crash deeper in."""
    state = {"version": 1, "messages": [], "meter": meter}

    with pytest.raises(SessionStateError, match="meter"):
        Session.restore(state, model=ScriptedModel([]))


async def test_a_meter_with_nothing_to_check_adds_no_coroutine_to_a_model_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No limit, compaction or editing: the meter's work is synchronous, and still counts."""
    from conjure_async._meter import Meter

    async def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the asynchronous meter path was taken")

    monkeypatch.setattr(Meter, "before_request", refuse)
    monkeypatch.setattr(Meter, "after_response", refuse)
    model = ScriptedModel([text_response("a"), text_response("b")])
    async with Session(model=model, prompt_caching=None) as session:
        await session.chat("one")
        await session.chat("two")
        assert session._meter.dump()["totals"]["requests"] == 2


def test_the_meter_s_cost_and_reply_equal_validated_ones() -> None:
    """The meter builds Cost and the priced Reply without validation; both equal validated ones."""

    class Options:
        model = object()
        model_name = "claude-sonnet-4-5"

    meter = Meter()
    meter.begin_chat()
    response = text_response("hi", usage=Usage(input_tokens=1200, output_tokens=340))
    meter.count(response, Options())  # type: ignore[arg-type]  # what the meter reads
    reply = Reply(text="hi", stop_reason="end_turn", usage=response.usage)
    priced = meter.finish_chat(reply)

    cost = Cost.model_validate(meter.cost.model_dump())
    assert meter.cost == cost
    assert cost.input_tokens == 1200
    assert cost.input_usd == pytest.approx(1200 * 3 / 1e6)
    assert priced == reply.model_copy(update={"cost": cost})
    assert Reply.model_validate(priced.model_dump()) == priced

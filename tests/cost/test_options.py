"""The long-conversation options refuse bad values when they are made, with clear errors."""

from __future__ import annotations

import pytest

from conjure_async import PromptCaching, Session, UsageLimits
from conjure_async.testing import ScriptedModel

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"ttl": "2h"}, "'5m' or '1h'"),
        ({"messages": 5}, "0 to 4"),
        ({"messages": -1}, "0 to 4"),
        ({"messages": 3}, "asks for 5 breakpoints"),
    ],
)
def test_prompt_caching_refuses_what_the_api_would(
    options: dict[str, object], message: str
) -> None:
    """An unknown lifetime or more than 4 breakpoints is refused before any request."""
    with pytest.raises(ValueError, match=message):
        PromptCaching(**options)  # type: ignore[arg-type]


def test_prompt_caching_may_use_all_four_breakpoints_in_the_conversation() -> None:
    """Four message breakpoints without tools and system are allowed."""
    assert PromptCaching(tools=False, system=False, messages=4).messages == 4


async def test_a_session_refuses_options_of_the_wrong_type() -> None:
    """``prompt_caching`` and the limits must be of their types (``None`` turns them off)."""
    with pytest.raises(TypeError, match="prompt_caching"):
        Session(model=ScriptedModel([]), prompt_caching="yes")  # type: ignore[arg-type]
    async with Session(model=ScriptedModel([]), usage_limits=UsageLimits(max_requests=1)) as s:
        with pytest.raises(TypeError, match="usage_limits must be UsageLimits"):
            s.usage_limits = {"max_requests": 1}  # type: ignore[assignment]
        s.chat_usage_limits = None
        assert s.usage_limits == UsageLimits(max_requests=1)

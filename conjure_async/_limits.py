"""Usage limits: what a chat or a session may spend, checked before each model request."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["UsageLimits"]


@dataclass(frozen=True, slots=True)
class UsageLimits:
    """The most a chat or a session may use; a request that would go over is not sent.

    Give them to the session, for the whole session or for each chat::

        Session(backend, model=model,
                usage_limits=UsageLimits(max_input_tokens=2_000_000),   # the session
                chat_usage_limits=UsageLimits(max_requests=30))         # each chat

    Before each model request the session checks every limit and raises
    :class:`~conjure_async.UsageLimitError` instead of sending a request
    that would go over; the history stays consistent (the turn ends as after
    a failed model call). Counted as the API bills them: input tokens are
    every input token processed (uncached, cache writes and reads, a
    compaction's own pass included).

    * ``max_requests``: model requests sent.
    * ``max_output_tokens``: each request's ``max_tokens`` is lowered to what
      is left, so a response cannot go over; with nothing left, the request
      is refused.
    * ``max_input_tokens``: a request needs at least as many input tokens as
      the previous one (the history only grows), so a request is refused
      when the previous request's size no longer fits. With
      ``count_tokens=True`` each request is counted exactly first
      (``/v1/messages/count_tokens``, free but rate limited); with
      compaction or context editing on, the previous size is no bound, so
      only an exact count (or the limit already reached) refuses a request.

    Args:
        max_requests: Model requests allowed.
        max_input_tokens: Input tokens allowed.
        max_output_tokens: Output tokens allowed.
        count_tokens: Count each request's input exactly before sending it
            (needs a model with ``count_tokens``, like ``AnthropicModel``).

    Raises:
        ValueError: A limit is negative.
    """

    max_requests: int | None = None
    max_input_tokens: int | None = None
    max_output_tokens: int | None = None
    count_tokens: bool = False

    def __post_init__(self) -> None:
        for name in ("max_requests", "max_input_tokens", "max_output_tokens"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"UsageLimits {name} must not be negative, not {value}")

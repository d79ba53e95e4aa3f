"""A base for objects that own resources and close with ``aclose()``."""

from __future__ import annotations

import abc
from types import TracebackType
from typing import Self

__all__ = ["AsyncCloseable"]


class AsyncCloseable(abc.ABC):
    """``async with obj:`` closes ``obj`` with :meth:`aclose` on exit."""

    __slots__ = ()

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Release what this object owns (idempotent)."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

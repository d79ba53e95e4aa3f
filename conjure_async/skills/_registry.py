"""A reloadable, concurrency-safe set of skills."""

from __future__ import annotations

import builtins
import contextlib
import fnmatch
import functools
from collections.abc import AsyncIterator, Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import NoReturn

import anyio
from anyio.abc import TaskStatus

from conjure_async._exceptions import SkillNotFoundError
from conjure_async.skills._loader import SkillSet, StrPath, load_skills
from conjure_async.skills._model import Diagnostic, Skill
from conjure_async.skills._validate import Profile, check_profile
from conjure_async.skills._watch import Watcher

__all__ = ["SkillRegistry"]


class SkillRegistry:
    """The skills an application offers, reloadable while it runs.

    Reads (:meth:`list`, :meth:`get`, :meth:`find`) are synchronous and never
    wait: they see one immutable snapshot, which :meth:`reload`,
    :meth:`add_path` and :meth:`register` replace atomically. Loads run in a
    worker thread (``anyio.to_thread``) under an ``anyio.Lock``, so reloads
    never block the event loop and never interleave. Call the methods from
    the event loop's thread.

    Skills given to the constructor or to :meth:`register` are kept across
    reloads and win over a loaded skill of the same name.

    Example::

        registry = await SkillRegistry.from_paths("skills/")
        async with registry.watch():
            ...  # edits under skills/ are picked up

    Args:
        skills: Skills to register up front.
        lenient: Load paths leniently (see :func:`load_skills`).
        profile: The validation profile.
        cache_dir: Where ``.skill`` packages are extracted.
    """

    def __init__(
        self,
        skills: Iterable[Skill] = (),
        *,
        lenient: bool = False,
        profile: Profile = "agentskills",
        cache_dir: StrPath | None = None,
    ) -> None:
        self._lenient = lenient
        self._profile = check_profile(profile)
        self._cache_dir = cache_dir
        self._lock = anyio.Lock()
        self._paths: tuple[Path, ...] = ()
        self._loaded: tuple[Skill, ...] = ()
        self._registered: Mapping[str, Skill] = MappingProxyType({s.name: s for s in skills})
        self._diagnostics: tuple[Diagnostic, ...] = ()
        self._snapshot: Mapping[str, Skill] = MappingProxyType({})
        self._generation = 0
        self._watchers: set[Watcher] = set()
        self._publish()

    @classmethod
    async def from_paths(
        cls,
        *paths: StrPath,
        lenient: bool = False,
        profile: Profile = "agentskills",
        cache_dir: StrPath | None = None,
    ) -> SkillRegistry:
        """Create a registry and load ``paths`` (as :func:`load_skills` does).

        Raises:
            SkillValidationError: In strict mode, when any skill has an error.
        """
        registry = cls(lenient=lenient, profile=profile, cache_dir=cache_dir)
        for path in paths:
            await registry.add_path(path)
        return registry

    @property
    def paths(self) -> tuple[Path, ...]:
        """The paths loaded on each :meth:`reload`."""
        return self._paths

    @property
    def diagnostics(self) -> tuple[Diagnostic, ...]:
        """The problems found by the last successful load."""
        return self._diagnostics

    @property
    def generation(self) -> int:
        """A counter increased each time the set of skills is replaced."""
        return self._generation

    def list(self) -> list[Skill]:
        """Return the current skills, sorted by name."""
        snapshot = self._snapshot
        return [snapshot[name] for name in sorted(snapshot)]

    def get(self, name: str) -> Skill:
        """Return the skill called ``name``.

        Raises:
            SkillNotFoundError: There is no such skill.
        """
        try:
            return self._snapshot[name]
        except KeyError:
            known = ", ".join(sorted(self._snapshot)) or "none"
            raise SkillNotFoundError(f"no skill named {name!r} (available: {known})") from None

    def find(self, pattern: str) -> builtins.list[Skill]:
        """Return the skills whose name matches the glob ``pattern`` (``"pdf-*"``), sorted."""
        return [s for s in self.list() if fnmatch.fnmatchcase(s.name, pattern)]

    def __contains__(self, name: object) -> bool:
        return name in self._snapshot

    def __len__(self) -> int:
        return len(self._snapshot)

    def register(self, skill: Skill) -> None:
        """Add ``skill``; it stays across reloads and wins over a loaded skill of its name."""
        self._registered = MappingProxyType({**self._registered, skill.name: skill})
        self._publish()

    async def add_path(self, path: StrPath) -> SkillSet:
        """Add a skill directory, folder of skills or ``.skill`` package and load it.

        All paths are re-read, as in :meth:`reload`.

        Returns:
            The result of the load.

        Raises:
            SkillValidationError: In strict mode, when any skill has an error;
                the path is then not added.
        """
        async with self._lock:
            paths = (*self._paths, Path(path))
            result = await self._load(paths)
            self._paths = paths
            self._set_loaded(result)
        for watcher in self._watchers:
            watcher.rewatch()
        return result

    async def reload(self) -> SkillSet:
        """Re-read every path and swap in the new skills atomically.

        Registered skills are kept. If loading fails (strict mode), the
        previous skills stay in place and the error is raised.

        Returns:
            The result of the load.

        Raises:
            SkillValidationError: In strict mode, when any skill has an error.
        """
        async with self._lock:
            result = await self._load(self._paths)
            self._set_loaded(result)
            return result

    async def watch_forever(
        self,
        interval: float = 1.0,
        *,
        task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> NoReturn:
        """Reload whenever a file under the paths changes, until cancelled.

        Changes come from the operating system's file events (through
        ``watchfiles``), not from scanning: an edit is seen even when it keeps
        a file's size and modification time, and nothing is read while nothing
        changes. Paths added with :meth:`add_path` are followed too. A reload
        that fails is logged as a warning and the previous skills stay.
        ``task_status.started()`` is called once the paths are being watched
        (for ``TaskGroup.start``).

        Args:
            interval: Seconds a burst of changes is gathered for, at most,
                before one reload (watchfiles' ``debounce``).
            task_status: Set by ``TaskGroup.start``.
        """
        await self._watch(Watcher(self, interval), task_status=task_status)
        raise AssertionError("unreachable: only stop() ends a watcher, and nobody holds this one")

    @contextlib.asynccontextmanager
    async def watch(self, interval: float = 1.0) -> AsyncIterator[SkillRegistry]:
        """Reload on file changes while the ``async with`` block runs.

        Watches like :meth:`watch_forever`; leaving the block stops the watcher
        (a reload under way completes first).
        """
        watcher = Watcher(self, interval)
        async with anyio.create_task_group() as tg:
            await tg.start(functools.partial(self._watch, watcher))
            try:
                yield self
            finally:
                watcher.stop()

    async def _watch(
        self, watcher: Watcher, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        self._watchers.add(watcher)
        try:
            await watcher.run(task_status=task_status)
        finally:
            self._watchers.discard(watcher)

    async def _load(self, paths: tuple[Path, ...]) -> SkillSet:
        if not paths:
            return SkillSet()
        load = functools.partial(
            load_skills,
            *paths,
            lenient=self._lenient,
            profile=self._profile,
            cache_dir=self._cache_dir,
        )
        return await anyio.to_thread.run_sync(load)

    def _set_loaded(self, result: SkillSet) -> None:
        self._loaded = tuple(result)
        self._diagnostics = tuple(result.diagnostics)
        self._publish()

    def _publish(self) -> None:
        snapshot = {s.name: s for s in self._loaded}
        snapshot.update(self._registered)
        self._snapshot = MappingProxyType(snapshot)
        self._generation += 1

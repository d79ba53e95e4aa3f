"""Fixtures for the skills tests: skill directories and zip packages built on the fly."""

from __future__ import annotations

import stat
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

MakeSkill = Callable[..., Path]
MakeZip = Callable[..., Path]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Extract packages under the test's tmp dir, never into the user's cache."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("CONJURE_CACHE_DIR", str(cache))
    return cache / "packages"


def _skill_md(
    name: str = "demo-skill",
    description: str = "Does demo things. Use it in tests.",
    extra: str = "",
    body: str = "# Demo\n\nFollow these steps.\n",
) -> str:
    return f"---\nname: {name}\ndescription: {description}\n{extra}---\n{body}"


@pytest.fixture
def skill_text() -> Callable[..., str]:
    """Render a SKILL.md: ``skill_text(name, description=..., extra="k: v\\n", body=...)``."""
    return _skill_md


@pytest.fixture
def make_skill(tmp_path: Path) -> MakeSkill:
    """Create ``<root>/<dirname>/SKILL.md`` plus ``files``; return the skill directory."""

    def make(
        name: str = "demo-skill",
        *,
        text: str | None = None,
        files: Mapping[str, str | bytes] | None = None,
        root: Path | None = None,
        dirname: str | None = None,
        **fields: str,
    ) -> Path:
        directory = (root or tmp_path / "skills") / (dirname or name)
        directory.mkdir(parents=True, exist_ok=True)
        content = text if text is not None else _skill_md(name, **fields)
        (directory / "SKILL.md").write_text(content, encoding="utf-8")
        for rel, data in (files or {}).items():
            target = directory / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(data, bytes):
                target.write_bytes(data)
            else:
                target.write_text(data, encoding="utf-8")
        return directory

    return make


@pytest.fixture
def make_zip(tmp_path: Path) -> MakeZip:
    """Write a zip from ``{name: content}``; content ``None`` makes a symlink entry."""

    def make(entries: Mapping[str, str | bytes | None], name: str = "demo-skill.skill") -> Path:
        path = tmp_path / name
        with zipfile.ZipFile(path, "w") as archive:
            for entry, content in entries.items():
                if content is None:
                    info = zipfile.ZipInfo(entry)
                    info.external_attr = (stat.S_IFLNK | 0o777) << 16
                    archive.writestr(info, "/etc/passwd")
                else:
                    archive.writestr(entry, content)
        return path

    return make

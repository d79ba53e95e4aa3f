"""Build small skill folders on disk for the Anthropic tests."""

from __future__ import annotations

from pathlib import Path

from conjure_async.skills import Skill, load_skill


def make_skill(
    root: Path,
    name: str = "budget-builder",
    *,
    body: str = "Do it.",
    extra: dict[str, bytes] | None = None,
) -> Skill:
    """Write ``root/name`` with a SKILL.md (and ``extra`` files) and load it."""
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "SKILL.md").write_text(
        f"---\nname: {name}\ndescription: Builds {name} things for tests.\n---\n\n{body}\n",
        encoding="utf-8",
    )
    for rel, content in (extra or {"scripts/run.py": b"print('hi')\n"}).items():
        target = folder / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    return load_skill(folder)

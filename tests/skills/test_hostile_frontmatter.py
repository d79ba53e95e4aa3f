"""Hostile SKILL.md files: alias bombs, oversized files, huge values, odd YAML tags.

Each case must end in a clear, bounded diagnostic (lenient) or error (strict),
quickly and in bounded memory, and never in another exception type.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conjure_async._exceptions import SkillParseError, SkillValidationError
from conjure_async.skills import (
    Diagnostic,
    Skill,
    load_skill,
    load_skills,
    parse_skill_md,
    validate_frontmatter,
)
from conjure_async.skills._model import MAX_DIAGNOSTIC_FIELD, MAX_DIAGNOSTIC_MESSAGE
from conjure_async.skills._parse import MAX_FRONTMATTER_SIZE, MAX_SKILL_MD_SIZE

REPO = Path(__file__).resolve().parents[2]
MakeSkill = Callable[..., Path]
PATH = "skills/demo/SKILL.md"
# What any one diagnostic may take once printed: path + field + message + separators.
BOUND = MAX_DIAGNOSTIC_FIELD + MAX_DIAGNOSTIC_MESSAGE + 200


def _json_of(script: str, *args: str, timeout: float) -> Any:
    """Run ``script`` in a new interpreter from the repository; what it printed as JSON."""
    completed = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
        timeout=timeout,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    return json.loads(completed.stdout)


def laughs(depth: int) -> str:
    """A SKILL.md whose metadata holds a YAML "billion laughs": 9**depth strings."""
    lines = ["---", "name: demo-skill", "description: d", "metadata:", '  l0: &l0 "lol"']
    for level in range(1, depth + 1):
        refs = ", ".join([f"*l{level - 1}"] * 9)
        lines.append(f"  l{level}: &l{level} [{refs}]")
    return "\n".join([*lines, "---", "Body.", ""])


def assert_bounded(diagnostics: list[Diagnostic]) -> None:
    assert diagnostics
    assert all(len(str(d)) < BOUND for d in diagnostics), [len(str(d)) for d in diagnostics]


# --- item 22: alias expansion ------------------------------------------------------


def test_billion_laughs_depth_6_is_refused_with_a_bounded_diagnostic(
    make_skill: MakeSkill,
) -> None:
    """A depth-6 alias bomb under metadata: one short 'anchors and aliases' problem, both modes."""
    text = laughs(6)
    assert len(text.encode()) < 1024
    directory = make_skill(text=text)
    result = load_skills(directory, lenient=True)
    assert list(result) == []
    assert_bounded(result.diagnostics)
    assert [(d.field, d.severity) for d in result.failures] == [("frontmatter", "error")]
    assert "anchors and aliases" in result.failures[0].message
    assert "line 5" in result.failures[0].message
    with pytest.raises(SkillValidationError, match="anchors and aliases") as info:
        load_skill(directory)
    assert len(str(info.value)) < BOUND


def test_billion_laughs_depth_8_is_refused_in_bounded_memory(tmp_path: Path) -> None:
    """A depth-8 alias bomb (43 million strings) loads in a 512 MiB address space, both modes."""
    directory = tmp_path / "skills" / "demo-skill"
    directory.mkdir(parents=True)
    (directory / "SKILL.md").write_text(laughs(8), encoding="utf-8")
    script = textwrap.dedent(
        """
        import json, logging, resource, sys
        limit = 512 * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        logging.disable(logging.CRITICAL)
        from conjure_async._exceptions import SkillValidationError
        from conjure_async.skills import load_skill, load_skills
        result = load_skills(sys.argv[1], lenient=True)
        try:
            load_skill(sys.argv[1])
            strict = "loaded"
        except SkillValidationError as exc:
            strict = str(exc)
        print(json.dumps({"lenient": [str(d) for d in result.diagnostics], "strict": strict}))
        """
    )
    report = _json_of(script, str(directory), timeout=120)
    assert len(report["lenient"]) == 1
    assert "anchors and aliases" in report["lenient"][0]
    assert len(report["lenient"][0]) < BOUND
    assert "anchors and aliases" in report["strict"]
    assert len(report["strict"]) < BOUND


@pytest.mark.parametrize(
    ("yaml_text", "line"),
    [
        ("name: &n demo\ndescription: *n", 2),
        ("name: demo\ndescription: d\nmetadata: &m\n  a: b", 4),
        ("base: &b {a: b}\nmetadata:\n  <<: *b", 2),
        ("name: demo\nx: &loop [*loop]", 3),
    ],
    ids=["alias-as-value", "anchor-alone", "merge-key", "recursive"],
)
def test_anchors_and_aliases_are_refused_with_their_line(yaml_text: str, line: int) -> None:
    """Anchors and aliases anywhere in the frontmatter are refused, at the file line they are on."""
    with pytest.raises(SkillParseError, match="anchors and aliases") as info:
        parse_skill_md(f"---\n{yaml_text}\n---\nbody\n", PATH)
    assert info.value.line == line


def _shared_lists(depth: int) -> list[Any]:
    value: Any = "lol"
    for _ in range(depth):
        value = [value] * 9
    return value  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    "frontmatter",
    [
        {"name": "demo", "description": "d", "metadata": {"bomb": _shared_lists(6)}},
        {"name": "demo", "description": "d", "metadata": {"k": ["x" * 100_000]}},
        {"name": "demo", "description": "d", "metadata": {"k" * 100_000: 1}},
        {"name": "demo", "description": "d", "metadata": {10**4000: "v"}},
        {"name": "x" * 100_000, "description": "d"},
        {"name": "".join(chr(c) for c in range(0x2500, 0x2500 + 5000)), "description": "d"},
        {"name": "demo", "description": "d", "u" * 100_000: "v"},
        {"name": "demo", "description": "d", "allowed-tools": {"k": "x" * 100_000}},
    ],
    ids=[
        "shared-lists",
        "long-list-value",
        "long-key",
        "huge-int-key",
        "long-name",
        "many-bad-chars",
        "long-unknown-field",
        "long-allowed-tools",
    ],
)
def test_every_diagnostic_quoting_a_value_is_bounded(frontmatter: dict[str, Any]) -> None:
    """Validation quotes hostile values (shared lists, 100k-character keys...) in bounded size."""
    found = validate_frontmatter(frontmatter, path=PATH, dir_name="demo")
    assert_bounded(found)


def test_the_number_of_diagnostics_per_skill_is_bounded() -> None:
    """A frontmatter with 5,000 bad metadata values gives a capped list ending in 'more'."""
    metadata = {f"k{i}": i for i in range(5000)}
    found = validate_frontmatter(
        {"name": "demo", "description": "d", "metadata": metadata}, path=PATH
    )
    assert 10 < len(found) <= 50
    assert "more problem" in found[-1].message


def test_a_diagnostic_built_by_hand_is_capped() -> None:
    """Diagnostic itself truncates an oversized field and message, saying how much it cut."""
    diagnostic = Diagnostic(PATH, "f" * 10_000, "m" * 1_000_000)
    assert len(diagnostic.field) <= MAX_DIAGNOSTIC_FIELD
    assert len(diagnostic.message) <= MAX_DIAGNOSTIC_MESSAGE
    assert diagnostic.message.endswith("more characters]")


@pytest.mark.parametrize(
    "value",
    [
        '!!timestamp "xyz"',
        "!!bool maybe",
        '!!int "' + "9" * 5000 + '"',
        '!!float "abc"',
        "!!python/object:os.system x",
    ],
    ids=["bad-timestamp", "bad-bool", "int-too-long", "bad-float", "python-tag"],
)
def test_malformed_tagged_values_raise_only_skill_parse_error(value: str) -> None:
    """Explicitly tagged values PyYAML cannot build are a bounded SkillParseError, nothing else."""
    with pytest.raises(SkillParseError, match="invalid YAML") as info:
        parse_skill_md(f"---\nname: demo\ndescription: {value}\n---\n", PATH)
    assert len(str(info.value)) < BOUND


# --- item 23: oversized files -------------------------------------------------------


def _sparse_skill_md(directory: Path, size: int) -> Path:
    """Write a SKILL.md of ``size`` bytes whose frontmatter never ends (a sparse tail)."""
    path = directory / "SKILL.md"
    with path.open("wb") as fh:
        fh.write(b"---\nname: demo-skill\ndescription: d\nmetadata:\n  k: '")
        fh.truncate(size)  # the rest reads as NUL bytes, inside the quoted value
    return path


def test_a_50_mb_frontmatter_is_refused_before_parsing(make_skill: MakeSkill) -> None:
    """A 50 MB SKILL.md is refused by size, naming the file and the limit, both modes."""
    directory = make_skill()
    path = _sparse_skill_md(directory, 50 * 1024 * 1024)
    result = load_skills(directory, lenient=True)
    assert list(result) == []
    (failure,) = result.failures
    assert failure.path == str(path)
    assert failure.field == "SKILL.md"
    assert f"more than the {MAX_SKILL_MD_SIZE}-byte limit" in failure.message
    assert str(50 * 1024 * 1024) in failure.message
    with pytest.raises(SkillValidationError, match=f"{MAX_SKILL_MD_SIZE}-byte limit"):
        load_skill(directory)


def test_a_file_at_the_size_limit_is_read(make_skill: MakeSkill) -> None:
    """A SKILL.md of exactly the size limit (a long body) still loads."""
    directory = make_skill()
    head = (directory / "SKILL.md").read_bytes()
    (directory / "SKILL.md").write_bytes(head + b"x" * (MAX_SKILL_MD_SIZE - len(head)))
    skill = load_skill(directory)
    assert len(skill.body) > MAX_SKILL_MD_SIZE - 200


def test_a_frontmatter_over_its_limit_is_refused_in_a_small_file() -> None:
    """A frontmatter over MAX_FRONTMATTER_SIZE characters is refused before YAML reads it."""
    value = "x" * MAX_FRONTMATTER_SIZE
    with pytest.raises(SkillParseError, match=f"{MAX_FRONTMATTER_SIZE}-character limit"):
        parse_skill_md(f"---\nname: demo\ndescription: {value}\n---\nbody\n", PATH)


def test_a_frontmatter_without_newlines_over_its_limit_is_refused() -> None:
    """One giant line after the opening fence is refused by the same limit."""
    with pytest.raises(SkillParseError, match="-character limit"):
        parse_skill_md("---\n" + "a" * (MAX_FRONTMATTER_SIZE * 4), PATH)


def test_a_frontmatter_at_its_limit_is_parsed() -> None:
    """A frontmatter of exactly MAX_FRONTMATTER_SIZE characters parses."""
    head = "name: demo\ndescription: d\nlicense: "
    source = head + "x" * (MAX_FRONTMATTER_SIZE - len(head))
    mapping, body, start = parse_skill_md(f"---\n{source}\n---\nbody\n", PATH)
    assert len(mapping["license"]) == MAX_FRONTMATTER_SIZE - len(head)
    assert (body, start) == ("body\n", 6)


def test_a_huge_body_given_to_parse_skill_md_is_refused(tmp_path: Path) -> None:
    """parse_skill_md itself refuses text over the file limit, without splitting it into lines."""
    text = "---\nname: demo\ndescription: d\n---\n" + "\n" * MAX_SKILL_MD_SIZE
    with pytest.raises(SkillParseError, match="-byte limit"):
        parse_skill_md(text, PATH)


def test_an_oversized_skill_md_is_refused_when_the_body_is_read_later(
    make_skill: MakeSkill,
) -> None:
    """A SKILL.md that grows past the limit after loading is refused when its body is read."""
    directory = make_skill()
    skill: Skill = load_skill(directory)
    _sparse_skill_md(directory, MAX_SKILL_MD_SIZE + 1)
    with pytest.raises(SkillParseError, match="-byte limit"):
        skill.load_body()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_special_files_in_a_skill_are_skipped_not_read(tmp_path: Path) -> None:
    """A named pipe as SKILL.md or as a resource never blocks loading (checked in a child)."""
    root = tmp_path / "skills"
    pipe_resource = root / "demo-skill"
    pipe_resource.mkdir(parents=True)
    (pipe_resource / "SKILL.md").write_text("---\nname: demo-skill\ndescription: d\n---\nB\n")
    os.mkfifo(pipe_resource / "fifo")
    pipe_skill_md = root / "piped"
    pipe_skill_md.mkdir()
    os.mkfifo(pipe_skill_md / "SKILL.md")
    script = textwrap.dedent(
        """
        import json, logging, sys
        logging.disable(logging.CRITICAL)
        from conjure_async.skills import load_skills
        result = load_skills(*sys.argv[1:], lenient=True)
        print(json.dumps({"names": result.names(),
                          "diagnostics": [d.to_dict() for d in result.diagnostics]}))
        """
    )
    report = _json_of(script, str(root), str(pipe_skill_md / "SKILL.md"), timeout=60)
    assert report["names"] == ["demo-skill"]
    found = {(Path(d["path"]).name, d["field"], d["severity"]) for d in report["diagnostics"]}
    assert found == {("fifo", "resources", "warning"), ("SKILL.md", "SKILL.md", "error")}


def test_a_dangling_skill_md_symlink_is_reported_as_unreadable(tmp_path: Path) -> None:
    """A SKILL.md symlink to nowhere is a 'cannot read' error, not a misnamed file or nothing."""
    directory = tmp_path / "skills" / "demo-skill"
    directory.mkdir(parents=True)
    (directory / "SKILL.md").symlink_to(tmp_path / "missing.md")
    result = load_skills(tmp_path / "skills", lenient=True)
    assert [(d.path, d.field, d.message[:11]) for d in result.failures] == [
        (str(directory / "SKILL.md"), "SKILL.md", "cannot read")
    ]

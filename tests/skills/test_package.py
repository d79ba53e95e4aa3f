""".skill packages: safe extraction into a content-addressed cache."""

from __future__ import annotations

import hashlib
import io
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from conjure_async._exceptions import SkillPackageError, SkillValidationError
from conjure_async.skills import default_cache_dir, extract_skill_package, load_skill, load_skills

MakeZip = Callable[..., Path]

SKILL = "---\nname: demo-skill\ndescription: A packaged skill.\n---\nUse it.\n"


def leftovers(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir()) if cache.exists() else []


# --- layouts --------------------------------------------------------------------


def test_package_with_one_top_folder_is_extracted(make_zip: MakeZip, cache_dir: Path) -> None:
    package = make_zip({"demo-skill/SKILL.md": SKILL, "demo-skill/scripts/run.py": "print(1)"})
    directory = extract_skill_package(package)
    assert directory.name == "demo-skill"
    assert directory.parent.parent == cache_dir
    assert (directory / "SKILL.md").read_text() == SKILL
    assert (directory / "scripts" / "run.py").read_text() == "print(1)"


def test_package_with_skill_md_at_the_root_is_named_after_the_frontmatter(
    make_zip: MakeZip,
) -> None:
    package = make_zip({"SKILL.md": SKILL, "references/a.md": "a"}, name="download (1).skill")
    directory = extract_skill_package(package)
    assert directory.name == "demo-skill"
    assert (directory / "references" / "a.md").read_text() == "a"


def test_root_package_without_a_name_is_named_after_the_zip(make_zip: MakeZip) -> None:
    """A root SKILL.md with no usable name field gives the zip's stem as directory name."""
    text = "---\ndescription: d\n---\n"
    directory = extract_skill_package(make_zip({"SKILL.md": text}, name="fallback.skill"))
    assert directory.name == "fallback"


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ('"evil\\nname"', "'evil\\nname'"),
        ('"tab\\there"', "'tab\\there'"),
        ('"esc\\e[31m"', "'esc\\x1b[31m'"),
        ('"line\\Lsep"', "'line\\u2028sep'"),
        ("../evil", "'../evil'"),
        ("a/b", "'a/b'"),
        ('".."', "'..'"),
        ("x" * 300, "'" + "x" * 20),
    ],
    ids=["newline", "tab", "escape", "line-separator", "dotdot-path", "slash", "dotdot", "long"],
)
def test_root_package_whose_name_cannot_be_a_directory_is_refused(
    make_zip: MakeZip, cache_dir: Path, name: str, shown: str
) -> None:
    """A root SKILL.md name with control characters or path syntax is refused, nothing created."""
    text = f"---\nname: {name}\ndescription: d\n---\n"
    package = make_zip({"SKILL.md": text})
    with pytest.raises(SkillPackageError, match="cannot be used as a directory name") as info:
        extract_skill_package(package)
    assert shown in info.value.reason
    assert leftovers(cache_dir) == []


def test_root_package_with_a_name_that_is_invalid_but_safe_is_extracted(
    make_zip: MakeZip,
) -> None:
    """An invalid but harmless name (uppercase) is kept, so lenient loading can report it."""
    text = "---\nname: PDF-Tool\ndescription: d\n---\nBody.\n"
    package = make_zip({"SKILL.md": text})
    assert extract_skill_package(package).name == "PDF-Tool"
    (skill,) = load_skills(package, lenient=True)
    assert [d.field for d in skill.diagnostics] == ["name"]


def test_root_package_named_with_a_control_character_in_the_zip_name_is_refused(
    make_zip: MakeZip, cache_dir: Path
) -> None:
    """The zip-stem fallback goes through the same check as every other name."""
    package = make_zip({"SKILL.md": "---\ndescription: d\n---\n"}, name="bad\nname.skill")
    with pytest.raises(SkillPackageError, match="cannot be used as a directory name"):
        extract_skill_package(package)
    assert leftovers(cache_dir) == []


def test_cache_is_keyed_by_the_zip_sha256(make_zip: MakeZip, cache_dir: Path) -> None:
    package = make_zip({"demo-skill/SKILL.md": SKILL})
    directory = extract_skill_package(package)
    assert directory.parent.name == hashlib.sha256(package.read_bytes()).hexdigest()


def test_the_same_package_is_extracted_once(make_zip: MakeZip, cache_dir: Path) -> None:
    package = make_zip({"demo-skill/SKILL.md": SKILL})
    first = extract_skill_package(package)
    (first / "marker").write_text("still here")
    assert extract_skill_package(package) == first
    assert (first / "marker").exists()
    assert leftovers(cache_dir) == [first.parent.name]


def test_cache_dir_argument_wins(make_zip: MakeZip, tmp_path: Path) -> None:
    package = make_zip({"demo-skill/SKILL.md": SKILL})
    directory = extract_skill_package(package, cache_dir=tmp_path / "elsewhere")
    assert directory.parent.parent == tmp_path / "elsewhere"


def test_default_cache_dir_follows_conjure_cache_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CONJURE_CACHE_DIR", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c" / "packages"


def test_default_cache_dir_without_env_is_under_the_user_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("CONJURE_CACHE_DIR")
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / ".cache" / "conjure_async" / "packages"


def test_executable_bit_is_kept(tmp_path: Path) -> None:
    package = tmp_path / "demo-skill.skill"
    with zipfile.ZipFile(package, "w") as archive:
        archive.writestr("demo-skill/SKILL.md", SKILL)
        info = zipfile.ZipInfo("demo-skill/scripts/run.sh")
        info.external_attr = 0o100755 << 16
        archive.writestr(info, "#!/bin/sh\n")
    directory = extract_skill_package(package)
    assert (directory / "scripts" / "run.sh").stat().st_mode & 0o777 == 0o755
    assert (directory / "SKILL.md").stat().st_mode & 0o777 == 0o644


# --- loading packages --------------------------------------------------------------


def test_load_skill_from_a_package_records_its_source(make_zip: MakeZip) -> None:
    package = make_zip({"demo-skill/SKILL.md": SKILL, "demo-skill/assets/t.md": "t"})
    skill = load_skill(package)
    assert skill.name == "demo-skill"
    assert skill.source == package
    assert skill.resources.assets == ("assets/t.md",)
    assert skill.body == "Use it.\n"


def test_packages_in_a_root_folder_are_loaded(make_zip: MakeZip, tmp_path: Path) -> None:
    make_zip({"demo-skill/SKILL.md": SKILL})
    assert load_skills(tmp_path).names() == ["demo-skill"]


def test_package_problems_name_the_package(make_zip: MakeZip) -> None:
    package = make_zip({"other-name/SKILL.md": SKILL})
    with pytest.raises(SkillValidationError) as info:
        load_skill(package)
    (problem,) = info.value.problems
    assert (problem.path, problem.field) == (f"{package}!/other-name/SKILL.md", "name")


def test_unsafe_package_is_a_problem_in_strict_mode(make_zip: MakeZip) -> None:
    package = make_zip({"../evil/SKILL.md": SKILL})
    with pytest.raises(SkillValidationError) as info:
        load_skills(package)
    assert [(p.path, p.field) for p in info.value.problems] == [(str(package), "package")]


def test_unsafe_package_is_a_failure_in_lenient_mode(make_zip: MakeZip) -> None:
    package = make_zip({"../evil/SKILL.md": SKILL})
    result = load_skills(package, lenient=True)
    assert list(result) == []
    assert [(d.path, d.field) for d in result.failures] == [(str(package), "package")]


# --- refused packages --------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        ("/etc/SKILL.md", "is an absolute path"),
        ("demo-skill/../../SKILL.md", "contains '..'"),
        ("../SKILL.md", "contains '..'"),
        ("C:/skills/SKILL.md", "has a drive letter"),
        ("demo-skill\\SKILL.md", "contains a backslash"),
    ],
)
def test_unsafe_entry_names_are_refused(
    make_zip: MakeZip, cache_dir: Path, entry: str, reason: str
) -> None:
    package = make_zip({"demo-skill/SKILL.md": SKILL, entry: "x"})
    with pytest.raises(SkillPackageError, match=reason) as info:
        extract_skill_package(package)
    assert info.value.path == str(package)
    assert leftovers(cache_dir) == []


def test_symlink_entries_are_refused(make_zip: MakeZip, cache_dir: Path) -> None:
    package = make_zip({"demo-skill/SKILL.md": SKILL, "demo-skill/passwd": None})
    with pytest.raises(SkillPackageError, match="'demo-skill/passwd' is a symlink"):
        extract_skill_package(package)
    assert leftovers(cache_dir) == []


def test_duplicate_entries_are_refused(tmp_path: Path, cache_dir: Path) -> None:
    package = tmp_path / "dup.skill"
    with zipfile.ZipFile(package, "w") as archive:
        archive.writestr("demo-skill/SKILL.md", SKILL)
        with pytest.warns(UserWarning, match="Duplicate name"):
            archive.writestr("demo-skill/SKILL.md", "---\nname: evil\n---\n")
    with pytest.raises(SkillPackageError, match="appears more than once"):
        extract_skill_package(package)
    assert leftovers(cache_dir) == []


def test_encrypted_entries_are_refused(tmp_path: Path) -> None:
    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w") as archive:
        archive.writestr("demo-skill/SKILL.md", SKILL)
    data = bytearray(raw.getvalue())
    central = data.rfind(b"PK\x01\x02")
    struct.pack_into("<H", data, central + 8, 0x1)  # general purpose flag: encrypted
    struct.pack_into("<H", data, 6, 0x1)  # same in the local header
    package = tmp_path / "enc.skill"
    package.write_bytes(bytes(data))
    with pytest.raises(SkillPackageError, match="is encrypted"):
        extract_skill_package(package)


def test_too_many_files_are_refused(make_zip: MakeZip, cache_dir: Path) -> None:
    entries: dict[str, str | bytes | None] = {"demo-skill/SKILL.md": SKILL}
    entries.update({f"demo-skill/f{i}.txt": "x" for i in range(3)})
    package = make_zip(entries)
    with pytest.raises(SkillPackageError, match="holds 4 entries, more than the limit 3"):
        extract_skill_package(package, max_files=3)
    assert leftovers(cache_dir) == []


def test_file_count_at_the_limit_is_accepted(make_zip: MakeZip) -> None:
    package = make_zip({"demo-skill/SKILL.md": SKILL, "demo-skill/a.txt": "x"})
    assert extract_skill_package(package, max_files=2).name == "demo-skill"


def test_default_file_limit_is_2000(make_zip: MakeZip) -> None:
    entries: dict[str, str | bytes | None] = {"demo-skill/SKILL.md": SKILL}
    entries.update({f"demo-skill/f{i}": "" for i in range(2000)})
    with pytest.raises(SkillPackageError, match="holds 2001 entries"):
        extract_skill_package(make_zip(entries))


def _with_directories(path: Path, count: int, nested: bool = False) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("demo-skill/SKILL.md", SKILL)
        for i in range(count):
            name = "demo-skill/" + ("d/" * (i + 1) if nested else f"d{i}/")
            archive.writestr(zipfile.ZipInfo(name), b"")
    return path


def test_directory_entries_count_toward_the_entry_limit(tmp_path: Path, cache_dir: Path) -> None:
    """Three empty directory entries plus SKILL.md make four entries: over a limit of 3."""
    package = _with_directories(tmp_path / "dirs.skill", 3)
    with pytest.raises(SkillPackageError, match="holds 4 entries, more than the limit 3"):
        extract_skill_package(package, max_files=3)
    assert leftovers(cache_dir) == []


def test_nested_directory_entries_count_too(tmp_path: Path, cache_dir: Path) -> None:
    """A chain of nested directory entries counts one entry per directory."""
    package = _with_directories(tmp_path / "deep.skill", 5, nested=True)
    with pytest.raises(SkillPackageError, match="holds 6 entries"):
        extract_skill_package(package, max_files=5)
    assert extract_skill_package(package, max_files=6).name == "demo-skill"


def test_fifty_thousand_empty_directories_are_refused(tmp_path: Path, cache_dir: Path) -> None:
    """The issue's package: 50,000 empty directory entries, refused by the default limit."""
    package = _with_directories(tmp_path / "many.skill", 50_000)
    with pytest.raises(SkillPackageError, match="holds 50001 entries, more than the limit 2000"):
        extract_skill_package(package)
    assert leftovers(cache_dir) == []


@pytest.mark.parametrize(
    "entry",
    [
        "demo-skill/a\nb.txt",
        "demo-skill/tab\tname.md",
        "demo-skill/\x1b[31mred.txt",
        "demo-skill/del\x7f.txt",
        "demo-skill/c1\x85.txt",
        "demo-skill/line\u2028sep.md",
        "demo-skill/para\u2029sep.md",
        "demo-skill/dir\r/x.txt",
    ],
    ids=["newline", "tab", "escape", "del", "c1-nel", "line-sep", "para-sep", "cr-in-dir"],
)
def test_entry_names_with_control_characters_are_refused(
    make_zip: MakeZip, cache_dir: Path, entry: str
) -> None:
    """Entry names with control or line-breaking characters are refused before extraction."""
    package = make_zip({"demo-skill/SKILL.md": SKILL, entry: "x"})
    with pytest.raises(SkillPackageError, match="control character") as info:
        extract_skill_package(package)
    assert repr(entry) in info.value.reason
    assert leftovers(cache_dir) == []


def test_a_top_folder_with_a_newline_is_refused(make_zip: MakeZip, cache_dir: Path) -> None:
    """The top folder's name becomes a directory too, so it is checked the same way."""
    package = make_zip({"evil\nskill/SKILL.md": SKILL})
    with pytest.raises(SkillPackageError, match="control character"):
        extract_skill_package(package)
    assert leftovers(cache_dir) == []


def test_total_declared_size_over_the_limit_is_refused(make_zip: MakeZip, cache_dir: Path) -> None:
    package = make_zip({"demo-skill/SKILL.md": SKILL, "demo-skill/big.bin": b"\0" * 5000})
    with pytest.raises(SkillPackageError, match="more than the limit 4096"):
        extract_skill_package(package, max_total_size=4096)
    assert leftovers(cache_dir) == []


def test_zip_bomb_is_refused_by_the_default_limit(make_zip: MakeZip) -> None:
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("demo-skill/SKILL.md", SKILL)
        archive.writestr("demo-skill/zeros.bin", b"\0" * (51 * 1024 * 1024))
    package = make_zip({}, name="bomb.skill")
    package.write_bytes(bomb.getvalue())
    assert package.stat().st_size < 1024 * 1024
    with pytest.raises(SkillPackageError, match="more than the limit 52428800"):
        extract_skill_package(package)


def test_entry_larger_than_its_declared_size_is_refused(tmp_path: Path, cache_dir: Path) -> None:
    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w") as archive:
        archive.writestr("demo-skill/SKILL.md", SKILL)
        archive.writestr("demo-skill/big.txt", b"A" * 1000)
    data = bytearray(raw.getvalue())
    central = data.rfind(b"PK\x01\x02")  # the last central directory header: big.txt
    struct.pack_into("<I", data, central + 24, 10)  # declare 10 bytes uncompressed
    package = tmp_path / "liar.skill"
    package.write_bytes(bytes(data))
    with pytest.raises(SkillPackageError, match=r"'demo-skill/big\.txt'"):
        extract_skill_package(package)
    assert leftovers(cache_dir) == []


def test_not_a_zip_is_refused(tmp_path: Path) -> None:
    package = tmp_path / "fake.skill"
    package.write_text("this is not a zip")
    with pytest.raises(SkillPackageError, match="not a zip archive"):
        extract_skill_package(package)


def test_missing_package_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SkillPackageError, match="cannot read"):
        extract_skill_package(tmp_path / "missing.skill")


@pytest.mark.parametrize(
    "entries",
    [
        {"README.md": "no skill here"},
        {"one/SKILL.md": SKILL, "two/SKILL.md": SKILL},
        {"demo-skill/SKILL.md": SKILL, "stray.txt": "x"},
        {"a/b/SKILL.md": SKILL},
    ],
    ids=["no-skill-md", "two-top-folders", "top-folder-and-stray-file", "too-deep"],
)
def test_packages_without_a_usable_skill_md_are_refused(
    make_zip: MakeZip, cache_dir: Path, entries: dict[str, str | bytes | None]
) -> None:
    with pytest.raises(SkillPackageError, match=r"SKILL\.md must be at the package root"):
        extract_skill_package(make_zip(entries))
    assert leftovers(cache_dir) == []

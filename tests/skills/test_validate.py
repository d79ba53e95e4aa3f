"""validate_frontmatter: the agentskills.io rules and the 'anthropic' profile."""

from __future__ import annotations

from typing import Any

import pytest

from conjure_async.skills import Diagnostic, validate_frontmatter

PATH = "skills/demo/SKILL.md"


def problems(
    dir_name: str | None = None, profile: Any = "agentskills", **fields: Any
) -> list[tuple[str, str]]:
    frontmatter = {"name": "demo", "description": "Does demo things."}
    frontmatter.update({k.replace("_", "-"): v for k, v in fields.items()})
    found = validate_frontmatter(frontmatter, path=PATH, dir_name=dir_name, profile=profile)
    assert all(d.path == PATH and d.severity == "error" for d in found)
    return [(d.field, d.message) for d in found]


def fields_of(found: list[tuple[str, str]]) -> list[str]:
    return [field for field, _ in found]


def test_minimal_valid_frontmatter_has_no_problem() -> None:
    assert problems(dir_name="demo") == []


def test_all_optional_fields_valid() -> None:
    assert (
        problems(
            license="MIT",
            compatibility="python3",
            metadata={"author": "me", "version": "1.0"},
            allowed_tools="view bash_tool",
        )
        == []
    )


def test_diagnostic_str_is_path_field_message() -> None:
    assert str(Diagnostic("a/SKILL.md", "name", "is wrong")) == "a/SKILL.md: name: is wrong"


# --- name -------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["a", "pdf", "pdf-tools", "v2", "a1-b2-c3", "x" * 64, "café", "données-2"]
)
def test_valid_names(name: str) -> None:
    assert problems(name=name) == []


def test_name_is_checked_after_nfkc_normalisation() -> None:
    # Fullwidth letters normalise to ASCII, so the name equals its directory.
    assert problems(name="\uff44\uff45\uff4d\uff4f", dir_name="demo") == []


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("", "1-64 characters"),
        ("x" * 65, "1-64 characters (got 65)"),
        ("PDF", "must be lowercase (found 'D', 'F', 'P')"),
        ("pdf_tools", "may contain only letters, digits and hyphens (found '_')"),
        ("pdf tools", "may contain only letters, digits and hyphens (found ' ')"),
        ("pdf.tools", "may contain only letters, digits and hyphens (found '.')"),
        ("-pdf", "must not start or end with a hyphen"),
        ("pdf-", "must not start or end with a hyphen"),
        ("pdf--tools", "consecutive hyphens"),
    ],
)
def test_invalid_names(name: str, fragment: str) -> None:
    found = problems(name=name)
    assert fields_of(found)
    assert set(fields_of(found)) == {"name"}
    assert any(fragment in message for _, message in found)


@pytest.mark.parametrize(("value", "fragment"), [(None, "is required"), (42, "must be a string")])
def test_name_must_be_a_string(value: Any, fragment: str) -> None:
    found = problems(name=value)
    assert fields_of(found) == ["name"]
    assert fragment in found[0][1]


# The agentskills reference validator (skills-ref, validator._validate_name):
# NFKC-normalise, then every character is alphanumeric (str.isalnum) or '-',
# and the name equals its lowercase form. Its own tests' names come first.
REFERENCE_ACCEPTS = [
    "my-skill",
    "技能",
    "мой-навык",
    "навык",
    "café",
    "cafe\u0301",  # decomposed: NFKC composes it
    "σκιλ",
    "straße",
    "٣-skill",  # an Arabic-Indic digit is a digit
    "ひらがな",
    "한국어-스킬",
    "\uff44\uff45\uff4d\uff4f",  # fullwidth "demo" normalises to ASCII
    "ﬁle",  # the 'fi' ligature normalises to 'fi'
]
REFERENCE_REJECTS = [
    ("MySkill", "must be lowercase (found 'M', 'S')"),
    ("НАВЫК", "must be lowercase (found 'А', 'В', 'К', 'Н', 'Ы')"),  # noqa: RUF001
    ("ΣΚΙΛ", "must be lowercase"),
    ("ǅungla", "must be lowercase (found 'D')"),  # NFKC splits the titlecase 'ǅ' into 'Dž'
    ("Ⅻ-skill", "must be lowercase"),  # Roman numeral XII: NFKC gives 'XII'
    ("my_skill", "may contain only letters, digits and hyphens (found '_')"),
    ("-my-skill", "must not start or end with a hyphen"),
    ("my--skill", "consecutive hyphens"),
    ("a" * 70, "1-64 characters (got 70)"),
    ("技能!", "may contain only letters, digits and hyphens (found '!')"),
    ("emoji-\U0001f600", "may contain only letters, digits and hyphens"),
]


@pytest.mark.parametrize("name", REFERENCE_ACCEPTS)
def test_names_the_reference_validator_accepts_are_accepted(name: str) -> None:
    """Lowercase names in any script (letters without case count as lowercase) are valid."""
    assert problems(name=name) == []


@pytest.mark.parametrize(("name", "fragment"), REFERENCE_REJECTS)
def test_names_the_reference_validator_rejects_are_rejected(name: str, fragment: str) -> None:
    """Letters with case must be lowercase; only letters, digits and '-' are allowed."""
    found = problems(name=name)
    assert set(fields_of(found)) == {"name"}
    assert any(fragment in message for _, message in found), found


@pytest.mark.parametrize(
    ("name", "dir_name"),
    [("技能", "技能"), ("мой-навык", "мой-навык"), ("cafe\u0301", "café"), ("café", "cafe\u0301")],
)
def test_non_latin_names_match_their_directory_after_nfkc(name: str, dir_name: str) -> None:
    """The directory-name match compares NFKC forms, in every script."""
    assert problems(name=name, dir_name=dir_name) == []


def test_non_latin_name_must_still_match_its_directory() -> None:
    """A non-Latin name that differs from its directory is reported."""
    assert problems(name="技能", dir_name="навык") == [
        ("name", "'技能' must match the skill directory name 'навык'")
    ]


def test_missing_name_is_reported() -> None:
    found = validate_frontmatter({"description": "d"}, path=PATH)
    assert [(d.field, d.message) for d in found] == [("name", "is required and must be a string")]


def test_name_must_match_the_directory_name() -> None:
    found = problems(name="demo", dir_name="other")
    assert found == [("name", "'demo' must match the skill directory name 'other'")]


def test_directory_name_is_not_checked_when_unknown() -> None:
    assert problems(name="demo", dir_name=None) == []


# --- description ----------------------------------------------------------------


def test_description_of_1024_characters_is_valid() -> None:
    assert problems(description="d" * 1024) == []


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (None, "is required"),
        ("", "must not be empty"),
        ("   ", "must not be empty"),
        ("d" * 1025, "at most 1024 characters (got 1025)"),
        (["a", "list"], "must be a string"),
    ],
)
def test_invalid_descriptions(value: Any, fragment: str) -> None:
    found = problems(description=value)
    assert fields_of(found) == ["description"]
    assert fragment in found[0][1]


# --- optional fields --------------------------------------------------------------


def test_compatibility_of_500_characters_is_valid() -> None:
    assert problems(compatibility="c" * 500) == []


@pytest.mark.parametrize(
    ("value", "fragment"), [("c" * 501, "at most 500 characters"), (3, "must be a string")]
)
def test_invalid_compatibility(value: Any, fragment: str) -> None:
    found = problems(compatibility=value)
    assert fields_of(found) == ["compatibility"]
    assert fragment in found[0][1]


def test_license_must_be_a_string() -> None:
    assert problems(license=["MIT"]) == [("license", "must be a string")]


def test_metadata_must_be_a_mapping() -> None:
    assert problems(metadata="author=me") == [
        ("metadata", "must be a mapping of strings to strings")
    ]


def test_metadata_values_must_be_strings() -> None:
    found = problems(metadata={"author": "me", "version": 1.0})
    assert fields_of(found) == ["metadata.version"]
    assert "got float 1.0 (quote it in YAML)" in found[0][1]


def test_metadata_keys_must_be_strings() -> None:
    assert fields_of(problems(metadata={1: "one"})) == ["metadata"]


def test_allowed_tools_must_be_a_space_separated_string() -> None:
    assert problems(allowed_tools=["view", "bash_tool"]) == [
        ("allowed-tools", "must be a space-separated string of tool names")
    ]


def test_unknown_top_level_fields_are_reported_each() -> None:
    found = problems(version="1.0", tags=["a"])
    assert fields_of(found) == ["version", "tags"]
    assert all("unknown field" in message for _, message in found)


def test_every_problem_is_reported_not_only_the_first() -> None:
    found = validate_frontmatter(
        {"name": "Bad--", "description": "", "license": 1, "extra": True}, path=PATH
    )
    assert sorted({d.field for d in found}) == ["description", "extra", "license", "name"]


# --- anthropic profile --------------------------------------------------------------


@pytest.mark.parametrize("name", ["pdf-tools", "v2"])
def test_anthropic_profile_accepts_ascii_names(name: str) -> None:
    assert problems(name=name, profile="anthropic") == []


@pytest.mark.parametrize(
    "name", ["café", "技能", "мой-навык", "٣-skill", "\uff44\uff45\uff4d\uff4f-é"]
)
def test_anthropic_profile_rejects_non_ascii_lowercase_names(name: str) -> None:
    """The hosted platform takes only [a-z0-9-], so every non-ASCII name fails that profile."""
    assert problems(name=name) == []
    found = problems(name=name, profile="anthropic")
    assert found == [("name", "must use only a-z, 0-9 and '-' on the hosted platform")]


def test_anthropic_profile_accepts_a_fullwidth_name_that_normalises_to_ascii() -> None:
    """NFKC runs first in both profiles: a fullwidth 'demo' is 'demo'."""
    assert problems(name="\uff44\uff45\uff4d\uff4f", dir_name="demo", profile="anthropic") == []


@pytest.mark.parametrize("name", ["claude-helper", "my-anthropic-tool"])
def test_anthropic_profile_rejects_reserved_words(name: str) -> None:
    assert problems(name=name) == []
    found = problems(name=name, profile="anthropic")
    assert fields_of(found) == ["name"]
    assert "reserved word" in found[0][1]


def test_anthropic_profile_rejects_xml_tags_in_description() -> None:
    description = "Use <b>this</b> skill."
    assert problems(description=description) == []
    assert problems(description=description, profile="anthropic") == [
        ("description", "must not contain XML tags")
    ]


def test_anthropic_profile_allows_comparisons_that_are_not_tags() -> None:
    assert problems(description="Use when 1 < 2 and 3 > 2.", profile="anthropic") == []


def test_anthropic_profile_rejects_xml_tags_in_name() -> None:
    found = problems(name="<tag>", profile="anthropic")
    assert ("name", "must not contain XML tags") in found


def test_unknown_profile_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unknown profile 'openai'"):
        problems(profile="openai")

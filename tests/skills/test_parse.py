"""parse_skill_md: frontmatter between '---' lines, then the body."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conjure_async._exceptions import SkillParseError
from conjure_async.skills import parse_skill_md

PATH = "skills/demo/SKILL.md"


def test_returns_mapping_body_and_body_start_line() -> None:
    text = "---\nname: demo\ndescription: Demo.\n---\n# Title\nText.\n"
    assert parse_skill_md(text, PATH) == (
        {"name": "demo", "description": "Demo."},
        "# Title\nText.\n",
        5,
    )


def test_utf8_bom_is_ignored() -> None:
    mapping, body, _ = parse_skill_md("\ufeff---\nname: demo\n---\nbody", PATH)
    assert (mapping, body) == ({"name": "demo"}, "body")


def test_crlf_line_endings_are_read_as_lf() -> None:
    mapping, body, start = parse_skill_md("---\r\nname: demo\r\n---\r\nline 1\r\nline 2", PATH)
    assert (mapping, body, start) == ({"name": "demo"}, "line 1\nline 2", 4)


def test_fence_with_trailing_spaces_is_accepted() -> None:
    assert parse_skill_md("--- \nname: demo\n---  \n", PATH)[0] == {"name": "demo"}


def test_empty_body_starts_after_the_closing_fence() -> None:
    assert parse_skill_md("---\nname: demo\n---", PATH) == ({"name": "demo"}, "", 4)


@pytest.mark.parametrize(
    "text",
    ["", "# Title\n", "name: demo\n---\n", "\n---\nname: demo\n---\n", "----\nname: x\n----\n"],
)
def test_missing_frontmatter_is_reported_at_line_1(text: str) -> None:
    with pytest.raises(SkillParseError, match="missing frontmatter") as info:
        parse_skill_md(text, PATH)
    assert (info.value.path, info.value.line) == (PATH, 1)


def test_unterminated_frontmatter_is_reported() -> None:
    with pytest.raises(SkillParseError, match="unterminated frontmatter") as info:
        parse_skill_md("---\nname: demo\ndescription: no end\n\nbody\n", PATH)
    assert info.value.line == 1


def test_invalid_yaml_reports_the_file_line_of_the_error() -> None:
    text = "---\nname: demo\ndescription: ok\nlicense: [unclosed\nother: x\n---\n"
    with pytest.raises(SkillParseError, match="invalid YAML") as info:
        parse_skill_md(text, PATH)
    assert info.value.line == 5  # the YAML error points at "other: x", file line 5


def test_invalid_yaml_line_accounts_for_a_bom_and_crlf() -> None:
    text = "\ufeff---\r\nname: demo\r\n\tbad: tab\r\n---\r\n"
    with pytest.raises(SkillParseError) as info:
        parse_skill_md(text, PATH)
    assert info.value.line == 3


def test_invalid_yaml_error_is_chained() -> None:
    with pytest.raises(SkillParseError) as info:
        parse_skill_md("---\na: [\n---\n", PATH)
    assert info.value.__cause__ is not None


def test_out_of_range_timestamp_is_a_parse_error_not_a_value_error() -> None:
    with pytest.raises(SkillParseError, match="invalid YAML value"):
        parse_skill_md("---\nname: 2001-13-45\n---\n", PATH)


@pytest.mark.parametrize(
    ("yaml_text", "kind"),
    [("", "empty"), ("- a\n- b", "a list"), ("just text", "a str"), ("42", "a int")],
)
def test_frontmatter_that_is_not_a_mapping_is_rejected(yaml_text: str, kind: str) -> None:
    with pytest.raises(SkillParseError, match=f"must be a YAML mapping, got {kind}") as info:
        parse_skill_md(f"---\n{yaml_text}\n---\n", PATH)
    assert info.value.line == 2


def test_non_string_keys_are_rejected() -> None:
    with pytest.raises(SkillParseError, match="keys must be strings"):
        parse_skill_md("---\n1: one\n---\n", PATH)


def test_error_message_names_file_and_line() -> None:
    with pytest.raises(SkillParseError) as info:
        parse_skill_md("no frontmatter", PATH)
    assert str(info.value).startswith(f"{PATH}:1: missing frontmatter")


def _parse_or_parse_error(text: str) -> None:
    try:
        mapping, body, start = parse_skill_md(text, PATH)
    except SkillParseError:
        return
    assert isinstance(mapping, dict)
    assert all(isinstance(k, str) for k in mapping)
    assert isinstance(body, str)
    assert start >= 3


@given(st.text())
def test_random_text_raises_only_skill_parse_error(text: str) -> None:
    _parse_or_parse_error(text)


@given(st.text())
def test_random_text_after_an_opening_fence_raises_only_skill_parse_error(text: str) -> None:
    _parse_or_parse_error("---\n" + text)


@given(st.text(alphabet=st.sampled_from("ab:- \n\t[]{}'\"#&*!|>%@`,?0123456789.\r\ufeff")))
def test_random_yaml_like_frontmatter_raises_only_skill_parse_error(text: str) -> None:
    _parse_or_parse_error(f"---\n{text}\n---\nbody")

"""The public surface of conjure_async.skills."""

from __future__ import annotations

from conjure_async import skills
from conjure_async._exceptions import SkillError, SkillResourceError


def test_all_is_sorted_and_exact() -> None:
    def isort_style(name: str) -> tuple[int, str]:
        # ruff RUF022 order: CONSTANTS, then Classes, then functions
        return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)

    assert skills.__all__ == sorted(skills.__all__, key=isort_style)
    assert set(skills.__all__) == {
        "MAX_FRONTMATTER_SIZE",
        "MAX_SKILL_MD_SIZE",
        "SKILL_TOOL_NAMES",
        "Diagnostic",
        "Profile",
        "Severity",
        "Skill",
        "SkillListing",
        "SkillPromptEntry",
        "SkillRegistry",
        "SkillResources",
        "SkillSet",
        "available_skills_block",
        "default_cache_dir",
        "estimate_tokens",
        "extract_skill_package",
        "load_skill",
        "load_skills",
        "parse_skill_md",
        "skill_tool_definitions",
        "validate_frontmatter",
    }


def test_public_names_are_defined_in_private_modules_and_read_as_the_package() -> None:
    """The code lives in ``skills/_*.py``; ``__module__`` names the public package."""
    for name in skills.__all__:
        value = getattr(skills, name)
        if callable(value) and hasattr(value, "__code__"):
            assert "/skills/_" in value.__code__.co_filename, name
        if isinstance(value, type) or (callable(value) and hasattr(value, "__code__")):
            assert value.__module__ == "conjure_async.skills", name


def test_resource_errors_are_skill_errors() -> None:
    assert issubclass(SkillResourceError, SkillError)

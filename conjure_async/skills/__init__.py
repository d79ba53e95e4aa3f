"""Agent Skills (the agentskills.io format): load, validate, describe and serve skills.

A skill is a directory holding a ``SKILL.md`` (YAML frontmatter with at least
``name`` and ``description``, then Markdown instructions) and optional
``scripts/``, ``references/`` and ``assets/``; a ``.skill`` file is the same
directory in a zip archive.

Skills are disclosed progressively: loading reads only the frontmatter and
the list of files; :attr:`Skill.body` and :meth:`Skill.read_resource` read
more on demand. :func:`available_skills_block` renders what the model sees
first, and :func:`skill_tool_definitions` the tools it uses to read and run
the rest.

::

    from conjure_async.skills import load_skills, available_skills_block

    skills = load_skills("examples/skills")          # strict: raises on any problem
    prompt = available_skills_block(skills)

    report = load_skills("skills/", lenient=True)    # lenient: never raises for skills
    for problem in report.diagnostics:
        print(problem)                               # "path: field: message"
"""

from conjure_async._public import publish
from conjure_async.skills._loader import SkillSet, load_skill, load_skills
from conjure_async.skills._model import Diagnostic, Severity, Skill, SkillResources
from conjure_async.skills._package import default_cache_dir, extract_skill_package
from conjure_async.skills._parse import MAX_FRONTMATTER_SIZE, MAX_SKILL_MD_SIZE, parse_skill_md
from conjure_async.skills._prompt import (
    SkillListing,
    SkillPromptEntry,
    available_skills_block,
    estimate_tokens,
)
from conjure_async.skills._registry import SkillRegistry
from conjure_async.skills._tools import SKILL_TOOL_NAMES, skill_tool_definitions
from conjure_async.skills._validate import Profile, validate_frontmatter

__all__ = [
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
]

publish(__name__, {name: globals()[name] for name in __all__})

"""The problems the broken-skill fixtures (tests/data/skills_broken) must report."""

BROKEN_PROBLEMS = [
    ("Bad_Name/SKILL.md", "name"),  # '_' is not allowed
    ("Bad_Name/SKILL.md", "name"),  # 'B' and 'N' are not lowercase
    ("bad-metadata/SKILL.md", "metadata.version"),
    ("bad-yaml/SKILL.md", "frontmatter"),
    ("dir-mismatch/SKILL.md", "name"),
    ("misnamed-file", "SKILL.md"),
    ("no-description/SKILL.md", "description"),
    ("no-frontmatter/SKILL.md", "frontmatter"),
    ("not-a-mapping/SKILL.md", "frontmatter"),
    ("unknown-field/SKILL.md", "version"),
    ("unterminated/SKILL.md", "frontmatter"),
]

"""The public surface of conjure_async.anthropic is pinned and sorted."""

from __future__ import annotations

import conjure_async.anthropic

EXPECTED = [
    "ANTHROPIC_VERSION",
    "AnthropicAPI",
    "DEFAULT_BASE_URL",
    "DEFAULT_DEADLINE",
    "Deleted",
    "FILES_BETA",
    "FileInfo",
    "FilesClient",
    "MAX_SKILL_UPLOAD_BYTES",
    "Page",
    "RetryPolicy",
    "SKILLS_BETA",
    "SkillInfo",
    "SkillVersionInfo",
    "SkillVersionsClient",
    "SkillsClient",
    "UploadFile",
    "merge_betas",
    "safe_filename",
    "skill_upload_files",
    "upload_problems",
]


def test_anthropic_package_surface_is_pinned_and_sorted() -> None:
    assert conjure_async.anthropic.__all__ == sorted(EXPECTED) == EXPECTED


def test_every_exported_name_resolves() -> None:
    for name in conjure_async.anthropic.__all__:
        assert getattr(conjure_async.anthropic, name) is not None, name

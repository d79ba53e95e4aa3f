"""Anthropic API helpers: the shared HTTP layer, the Skills API and the Files API.

::

    from conjure_async.anthropic import AnthropicAPI, FilesClient, SkillsClient
    from conjure_async.skills import load_skill

    async with AnthropicAPI() as api:                  # key from ANTHROPIC_API_KEY
        skills = SkillsClient(api)
        created = await skills.create_from_skill(load_skill("skills/budget-builder"))
        files = FilesClient(api)
        path = await files.download("file_011C...", "downloads/")

Both clients send the beta headers (``skills-2025-10-02``,
``files-api-2025-04-14``) by default and understand both the beta and the
post-GA response shapes. Only the hosted backend uses this package.
"""

from __future__ import annotations

from conjure_async._public import publish
from conjure_async.anthropic._api import (
    ANTHROPIC_VERSION,
    DEFAULT_BASE_URL,
    DEFAULT_DEADLINE,
    AnthropicAPI,
    RetryPolicy,
    merge_betas,
)
from conjure_async.anthropic._files import FILES_BETA, FilesClient, safe_filename
from conjure_async.anthropic._models import (
    Deleted,
    FileInfo,
    Page,
    SkillInfo,
    SkillVersionInfo,
)
from conjure_async.anthropic._skills import (
    MAX_SKILL_UPLOAD_BYTES,
    SKILLS_BETA,
    SkillsClient,
    SkillVersionsClient,
    UploadFile,
    skill_upload_files,
    upload_problems,
)

__all__ = [  # noqa: RUF022 - plain sorted(), as the public-API tests check
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

publish(__name__, {name: globals()[name] for name in __all__})

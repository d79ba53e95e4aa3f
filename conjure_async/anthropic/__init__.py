"""Anthropic API helpers: the shared HTTP layer, the Skills API and the Files API.

::

    from conjure_async.anthropic import AnthropicAPI, FilesClient, SkillsClient

    async with AnthropicAPI() as api:                  # ANTHROPIC_API_KEY
        skills = SkillsClient(api)
        skill = await skills.create_from_skill(load_skill("skills/budget-builder"))
        files = FilesClient(api)
        path = await files.download("file_011C...", "out/")

Other backends never need this package.
"""

from __future__ import annotations

from conjure_async.anthropic._api import (
    ANTHROPIC_VERSION,
    DEFAULT_BASE_URL,
    AnthropicAPI,
    RetryPolicy,
    merge_betas,
)

__all__ = [
    "ANTHROPIC_VERSION",
    "DEFAULT_BASE_URL",
    "AnthropicAPI",
    "RetryPolicy",
    "merge_betas",
]

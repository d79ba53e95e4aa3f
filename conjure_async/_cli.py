"""The ``conjure`` command line: ``validate``, ``skills list`` and ``demo``.

Exit codes: 0 success, 1 a skill is invalid or cannot be loaded (or a PATH
holds no skill), 2 usage error.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import logging
import sys
from pathlib import Path
from typing import Any

import anyio

from conjure_async.skills import (
    Diagnostic,
    Skill,
    SkillSet,
    load_skills,
)
from conjure_async.skills._loader import NO_SKILLS_FOUND
from conjure_async.skills._validate import check_profile

__all__ = ["main"]

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_USAGE = 2


def _examples_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "examples" / "skills"


def _diagnostic_line(diagnostic: Diagnostic) -> str:
    return f"{diagnostic.severity}: {diagnostic}"


def _skill_json(skill: Skill) -> dict[str, Any]:
    return {
        "name": skill.name,
        "description": skill.description,
        "location": str(skill.skill_md),
        "path": str(skill.path),
        "valid": skill.is_valid,
        "diagnostics": [d.to_dict() for d in skill.diagnostics],
    }


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _require_skills(result: SkillSet) -> SkillSet:
    """Make each PATH that holds no skill an error, not the library's warning.

    A library caller may load a folder that is empty for now; a PATH named on
    the command line that holds no skill is a typo or a mistake, and a CI
    step must not pass on it.
    """

    def promoted(diagnostic: Diagnostic) -> Diagnostic:
        if diagnostic.field == "path" and diagnostic.message == NO_SKILLS_FOUND:
            return dataclasses.replace(diagnostic, severity="error")
        return diagnostic

    return SkillSet(
        result,
        diagnostics=[promoted(d) for d in result.diagnostics],
        failures=[promoted(d) for d in result.failures],
    )


def _load(args: argparse.Namespace, paths: list[str]) -> SkillSet:
    """Load leniently, without the library's summary warning: the CLI prints every problem."""
    skills_logger = logging.getLogger("conjure_async.skills")
    was_disabled = skills_logger.disabled
    skills_logger.disabled = True
    try:
        profile = check_profile(getattr(args, "profile", "agentskills"))
        return _require_skills(load_skills(*paths, lenient=True, profile=profile))
    finally:
        skills_logger.disabled = was_disabled


def _cmd_validate(args: argparse.Namespace) -> int:
    result = _load(args, args.paths)
    errors = len(result.errors)
    warnings = len(result.diagnostics) - errors
    if args.json:
        report = {
            "ok": result.ok,
            "errors": errors,
            "warnings": warnings,
            "skills": [_skill_json(s) for s in result],
            "failures": [d.to_dict() for d in result.failures],
        }
        print(json.dumps(report, indent=2))
        return EXIT_OK if result.ok else EXIT_INVALID
    # One block per source, in path order, so a skill's problems stay together.
    blocks: list[tuple[str, list[str]]] = []
    for skill in result:
        lines = [f"ok: {skill.name} ({skill.path})"] if skill.is_valid else []
        lines += [_diagnostic_line(d) for d in skill.diagnostics]
        blocks.append((str(skill.skill_md), lines))
    blocks += [(str(Path(d.path).absolute()), [_diagnostic_line(d)]) for d in result.failures]
    for _, lines in sorted(blocks, key=lambda block: block[0]):
        for line in lines:
            print(line)
    valid = sum(1 for s in result if s.is_valid)
    invalid = len(result) - valid + len({d.path for d in result.failures if d.severity == "error"})
    print(
        f"{valid} valid, {invalid} invalid, {_plural(errors, 'error')}, "
        f"{_plural(warnings, 'warning')}"
    )
    return EXIT_OK if result.ok else EXIT_INVALID


def _report_problems(result: SkillSet) -> None:
    for diagnostic in result.diagnostics:
        print(_diagnostic_line(diagnostic), file=sys.stderr)


def _cmd_skills_list(args: argparse.Namespace) -> int:
    result = _load(args, args.paths)
    if args.json:
        listing = [
            {"name": s.name, "description": s.description, "location": str(s.skill_md)}
            for s in result
        ]
        print(json.dumps(listing, indent=2))
    else:
        for skill in result:
            print(skill.name)
            print(f"  description: {skill.description}")
            print(f"  location: {skill.skill_md}")
    _report_problems(result)
    return EXIT_OK if result.ok else EXIT_INVALID


def _cmd_demo(args: argparse.Namespace) -> int:
    """Run the offline demo: real tools, a scripted model, no API key."""
    del args
    root = _examples_dir()
    if not root.is_dir():
        print(
            f"error: the example skills are not available (looked in {root}); "
            "run the demo from a source checkout (pip install -e .)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    from conjure_async._demo import run_demo  # noqa: PLC0415 - keeps CLI start-up light

    return anyio.run(run_demo)


def _cmd_chat(args: argparse.Namespace) -> int:
    """Chat once with Claude through a chosen backend (needs ANTHROPIC_API_KEY)."""
    from conjure_async._demo import run_chat  # noqa: PLC0415 - keeps CLI start-up light

    return anyio.run(
        functools.partial(
            run_chat,
            args.message,
            backend=args.backend,
            skill_paths=args.skills or [],
            hosted_skills=args.skill or [],
            model_name=args.model,
        )
    )


def _cmd_docker_build(args: argparse.Namespace) -> int:
    """Build the sandbox image (online), or an offline one from this host's files."""
    from conjure_async._demo import build_docker_image  # noqa: PLC0415

    return anyio.run(functools.partial(build_docker_image, args.tag, offline=args.offline))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="conjure", description="Agent Skills runtime for Claude (conjure_async)."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    profile = argparse.ArgumentParser(add_help=False)
    profile.add_argument(
        "--profile",
        choices=("agentskills", "anthropic"),
        default="agentskills",
        help="rule set: the open specification, or with Anthropic's hosted-platform rules",
    )
    profile.add_argument("--json", action="store_true", help="print JSON")

    validate = commands.add_parser(
        "validate",
        parents=[profile],
        help="check skills against the specification",
        description="Check skill directories, folders of skills and .skill packages. "
        "Prints every problem as 'severity: path: field: message', 'ok: name (path)' "
        "for each valid skill, and a summary counting errors and warnings; exits 1 if "
        "any skill is invalid or cannot be loaded, or a PATH holds no skill.",
    )
    validate.add_argument("paths", nargs="+", metavar="PATH")
    validate.set_defaults(handler=_cmd_validate)

    skills = commands.add_parser("skills", help="inspect skills")
    skills_commands = skills.add_subparsers(dest="skills_command", required=True)
    listing = skills_commands.add_parser(
        "list", parents=[profile], help="list skills with description and location"
    )
    listing.add_argument("paths", nargs="+", metavar="PATH")
    listing.set_defaults(handler=_cmd_skills_list)

    demo = commands.add_parser(
        "demo", help="run the offline demo (scripted model, real tools, no API key)"
    )
    demo.set_defaults(handler=_cmd_demo)

    chat = commands.add_parser(
        "chat",
        help="chat once with Claude (needs ANTHROPIC_API_KEY)",
        description="Send one message to Claude through a backend and stream the events.",
    )
    chat.add_argument("message")
    chat.add_argument("--backend", choices=("local", "docker", "anthropic"), default="local")
    chat.add_argument("--skills", action="append", metavar="PATH", help="local skill paths")
    chat.add_argument(
        "--skill",
        action="append",
        metavar="NAME[@VERSION]",
        help="Anthropic pre-built skill for --backend anthropic (xlsx, pptx, docx, pdf)",
    )
    chat.add_argument("--model", default="claude-sonnet-5-5")
    chat.set_defaults(handler=_cmd_chat)

    docker = commands.add_parser("docker", help="Docker sandbox image")
    docker_commands = docker.add_subparsers(dest="docker_command", required=True)
    build = docker_commands.add_parser("build", help="build the sandbox image")
    build.add_argument("--tag", default="conjure-async-sandbox:latest")
    build.add_argument(
        "--offline",
        action="store_true",
        help="build from this host's bash/python files (no registry needed)",
    )
    build.set_defaults(handler=_cmd_docker_build)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``conjure`` command line and return its exit code.

    Args:
        argv: The arguments (without the program name); ``sys.argv[1:]`` when ``None``.

    Returns:
        0 on success, 1 when a skill is invalid or cannot be loaded, 2 on a usage error.
    """
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help and on usage errors
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    handler = args.handler
    code: int = handler(args)
    return code


if __name__ == "__main__":
    raise SystemExit(main())

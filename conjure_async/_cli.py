"""The ``conjure`` command line: validate, skills list, demo, chat and docker build.

``validate`` and ``skills list`` exit 1 when a skill is invalid or cannot be
loaded, or a PATH holds no skill. Errors: every
:class:`~conjure_async.ConjureError` that reaches the command line becomes
one line on standard error, ``conjure: error: Type: message; hint: what to
do``, and a documented exit code (:data:`EXIT_CODES`);
``conjure --debug COMMAND`` prints the traceback and the library's log
events too. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import json
import logging
import os
import sys
import textwrap
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio

from conjure_async import __version__
from conjure_async._exceptions import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BackendError,
    ConjureError,
    ContainerDiedError,
    DockerError,
    DockerUnavailableError,
    ImageNotFoundError,
    InternalServerError,
    MaxIterationsError,
    MissingDependencyError,
    ModelError,
    NotFoundError,
    OverloadedError,
    PermissionDeniedError,
    RateLimitError,
    SandboxUnavailableError,
    SessionError,
    SkillConflictError,
    SkillError,
    SkillNotFoundError,
    ToolConflictError,
)
from conjure_async.skills import (
    Diagnostic,
    Skill,
    SkillSet,
    load_skills,
)
from conjure_async.skills._loader import NO_SKILLS_FOUND
from conjure_async.skills._validate import check_profile

__all__ = ["EXIT_CODES", "main"]

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_USAGE = 2
EXIT_MODEL = 3
EXIT_BACKEND = 4
EXIT_SESSION = 5
EXIT_INTERRUPTED = 130

EXIT_CODES: dict[int, str] = {
    EXIT_OK: "success",
    EXIT_INVALID: "a skill is invalid or cannot be loaded (or another library error)",
    EXIT_USAGE: "usage: bad arguments, no ANTHROPIC_API_KEY, a missing optional extra",
    EXIT_MODEL: "the model or its API failed (network, key, rate limit, bad answer)",
    EXIT_BACKEND: "an execution backend failed (the Docker engine, a sandbox)",
    EXIT_SESSION: "the session stopped (iteration cap, clashing tool or skill names)",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C)",
}
"""Every exit code of ``conjure``, as ``conjure --help`` lists them."""

# The most specific class first: the first match decides.
_EXIT_BY_ERROR: tuple[tuple[type[ConjureError], int], ...] = (
    (SkillError, EXIT_INVALID),
    (MissingDependencyError, EXIT_USAGE),
    (ModelError, EXIT_MODEL),
    (BackendError, EXIT_BACKEND),
    (SessionError, EXIT_SESSION),
)

_HINTS: tuple[tuple[type[ConjureError], str], ...] = (
    (SkillNotFoundError, "`conjure skills list PATH` shows the skills found there"),
    (SkillError, "`conjure validate PATH` lists every problem with its file"),
    (MissingDependencyError, "install the extra the message names"),
    (AuthenticationError, "check ANTHROPIC_API_KEY"),
    (PermissionDeniedError, "this key may not use that model or feature: check --model"),
    (NotFoundError, "check the model name (--model) and the skill names (--skill)"),
    (RateLimitError, "rate limited: wait a moment, then try again"),
    (OverloadedError, "the API is overloaded: try again in a moment"),
    (InternalServerError, "the API failed on its side: try again"),
    (APIStatusError, "the API refused the request; `conjure --debug ...` shows the details"),
    (APITimeoutError, "the API did not answer in time: check the network, then try again"),
    (
        APIConnectionError,
        "no answer from the Anthropic API: check the network, a proxy, or ANTHROPIC_BASE_URL",
    ),
    (DockerUnavailableError, "start the Docker engine, or point DOCKER_HOST at one that answers"),
    (
        ImageNotFoundError,
        "`conjure docker build` builds the sandbox image (`--offline` without a registry)",
    ),
    (ContainerDiedError, "the sandbox container stopped; if it ran out of memory, allow more"),
    (SandboxUnavailableError, "install the sandbox the message names, or pick another backend"),
    (MaxIterationsError, "the model kept calling tools: ask for less in one message"),
    (SkillConflictError, "give every skill of the session its own name"),
    (ToolConflictError, "give every tool of the session its own name"),
)
_DEFAULT_HINT = "`conjure --debug ...` shows the traceback"
_HINT_NOTE = "hint: "
_MAX_MESSAGE = 600


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
        return _usage_error(
            f"the example skills are not available (looked in {root})",
            "run the demo from a source checkout (pip install -e .)",
        )
    from conjure_async._demo import run_demo  # noqa: PLC0415 - keeps CLI start-up light

    return anyio.run(run_demo)


def _cmd_chat(args: argparse.Namespace) -> int:
    """Chat once with Claude through a chosen backend (needs ANTHROPIC_API_KEY)."""
    if not os.environ.get("ANTHROPIC_API_KEY"):
        return _usage_error(
            "ANTHROPIC_API_KEY is not set",
            "set it to chat with Claude, or run `conjure demo` (offline, no key)",
        )
    from conjure_async._commands import run_chat  # noqa: PLC0415 - keeps CLI start-up light
    from conjure_async._console import Progress  # noqa: PLC0415 - keeps CLI start-up light

    return anyio.run(
        functools.partial(
            run_chat,
            args.message,
            backend=args.backend,
            skill_paths=args.skills or [],
            hosted_skills=args.skill or [],
            model_name=args.model,
            output_dir=args.output_dir,
            progress=Progress(),
        )
    )


def _cmd_docker_build(args: argparse.Namespace) -> int:
    """Build the sandbox image (online), or an offline one from this host's files."""
    from conjure_async._commands import build_docker_image  # noqa: PLC0415 - keeps start-up light
    from conjure_async._console import Progress  # noqa: PLC0415 - keeps CLI start-up light

    try:
        return anyio.run(
            functools.partial(
                build_docker_image, args.tag, offline=args.offline, progress=Progress()
            )
        )
    except DockerError as exc:
        # An engine that answers but cannot build from the Dockerfile: most often
        # its registry is out of reach, which the offline build does not need.
        if not args.offline and not isinstance(exc, DockerUnavailableError):
            exc.add_note(
                _HINT_NOTE + "no registry reachable? `conjure docker build --offline` "
                "builds the image from this host's files"
            )
        raise


def _cmd_mcp_serve(args: argparse.Namespace) -> int:
    """Serve skills over MCP (stdio, or streamable HTTP on --host/--port)."""
    from conjure_async._commands import serve_mcp  # noqa: PLC0415 - keeps CLI start-up light

    skills = _load(args, args.paths)
    _report_problems(skills)
    return anyio.run(
        functools.partial(
            serve_mcp,
            list(skills),
            backend=args.backend,
            transport=args.transport,
            host=args.host,
            port=args.port,
            image=args.image,
        )
    )


def _parser() -> argparse.ArgumentParser:
    codes = "\n".join(f"  {code:<3} {meaning}" for code, meaning in EXIT_CODES.items())
    parser = argparse.ArgumentParser(
        prog="conjure",
        description="Agent Skills runtime for Claude (conjure_async).",
        epilog=f"exit codes:\n{codes}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--debug",
        action="store_true",
        help="on an error, print the traceback; print the library's log events",
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
    chat.add_argument(
        "--backend",
        choices=("local", "docker", "anthropic"),
        default="local",
        help="where the tools run: local runs commands on this machine with your rights "
        "(default: local)",
    )
    chat.add_argument("--skills", action="append", metavar="PATH", help="local skill paths")
    chat.add_argument(
        "--skill",
        action="append",
        metavar="NAME[@VERSION]",
        help="Anthropic pre-built skill for --backend anthropic (xlsx, pptx, docx, pdf)",
    )
    chat.add_argument("--model", default="claude-sonnet-5-5")
    chat.add_argument(
        "--output-dir",
        metavar="DIR",
        help="save the files the tools created into DIR (default: only list them)",
    )
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

    mcp = commands.add_parser("mcp", help="Model Context Protocol")
    mcp_commands = mcp.add_subparsers(dest="mcp_command", required=True)
    serve = mcp_commands.add_parser(
        "serve",
        help="serve skills and the skill tools over MCP (needs the [mcp] extra)",
        description="Publish skills (the MCP Skills extension) and run view, create_file, "
        "str_replace and bash_tool on a backend, one sandbox per MCP client.",
    )
    serve.add_argument("paths", nargs="+", metavar="SKILLS", help="skill folders or .skill files")
    serve.add_argument("--backend", choices=("local", "docker"), default="local")
    serve.add_argument("--transport", choices=("stdio", "http"), default="stdio")
    serve.add_argument("--host", default="127.0.0.1", help="HTTP address (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="HTTP port; 0 picks a free one")
    serve.add_argument("--image", help="sandbox image for --backend docker")
    serve.set_defaults(handler=_cmd_mcp_serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``conjure`` command line and return its exit code.

    Args:
        argv: The arguments (without the program name); ``sys.argv[1:]`` when ``None``.

    Returns:
        One of :data:`EXIT_CODES`: 0 on success, 1 when a skill is invalid or
        cannot be loaded, 2 on a usage error, 3 when the model failed, 4 when
        a backend failed, 5 when the session stopped, 130 when interrupted.
    """
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help, --version and usage errors
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    with _library_logging(debug=args.debug):
        try:
            code: int = args.handler(args)
        except ConjureError as exc:
            if args.debug:
                traceback.print_exception(exc, file=sys.stderr)
            print(_error_line(exc), file=sys.stderr)
            return _exit_code(exc)
        except KeyboardInterrupt:
            print("conjure: interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
    return code


def _error_line(exc: ConjureError) -> str:
    """``conjure: error: Type: message; hint: ...`` on one line (the message's lines joined)."""
    message = textwrap.shorten(str(exc), _MAX_MESSAGE, placeholder=" ...")
    return f"conjure: error: {type(exc).__name__}: {message}; hint: {_hint(exc)}"


def _hint(exc: ConjureError) -> str:
    """A command's own hint (an exception note) first, else the one for the error's class."""
    for note in getattr(exc, "__notes__", ()):
        if isinstance(note, str) and note.startswith(_HINT_NOTE):
            return note.removeprefix(_HINT_NOTE)
    return next((hint for cls, hint in _HINTS if isinstance(exc, cls)), _DEFAULT_HINT)


def _exit_code(exc: ConjureError) -> int:
    return next((code for cls, code in _EXIT_BY_ERROR if isinstance(exc, cls)), EXIT_INVALID)


def _usage_error(message: str, hint: str) -> int:
    print(f"conjure: error: {message}; hint: {hint}", file=sys.stderr)
    return EXIT_USAGE


@contextlib.contextmanager
def _library_logging(*, debug: bool) -> Iterator[None]:
    """Route the library's log events for the run, and restore the logger after.

    Without ``--debug`` they are dropped: an error reaches the user as its one
    line, not also as the log events that led to it. With ``--debug`` every
    event, debug included, goes to standard error.
    """
    logger = logging.getLogger("conjure_async")
    saved = (logger.level, logger.propagate, list(logger.handlers))
    handler: logging.Handler
    if debug:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    else:
        handler = logging.NullHandler()
    logger.handlers = [handler]
    logger.setLevel(logging.DEBUG if debug else logging.CRITICAL + 1)
    logger.propagate = False
    try:
        yield
    finally:
        logger.level, logger.propagate, logger.handlers = saved[0], saved[1], saved[2]


if __name__ == "__main__":
    raise SystemExit(main())

#!/usr/bin/env python3
"""Summarize a structured log: counts per level and service, top error messages.

Usage: analyze.py [LOGFILE] [--format text|json] [--top N]
Reads LOGFILE, or standard input when LOGFILE is omitted or "-".
Standard library only.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from collections.abc import Iterable

LINE = re.compile(r"^(?P<ts>\d{4}-\d{2}-\d{2}T\S+)\s+(?P<level>[A-Z]+)\s*(?P<rest>.*)$")
FIELD = re.compile(r'(?P<key>[A-Za-z_][\w.-]*)=(?:"(?P<quoted>(?:[^"\\]|\\.)*)"|(?P<bare>\S*))')
ERROR_LEVELS = {"ERROR", "FATAL"}
LEVEL_ALIASES = {"WARNING": "WARN"}


def parse_fields(rest: str) -> dict[str, str]:
    fields = {}
    for match in FIELD.finditer(rest):
        quoted = match.group("quoted")
        value = quoted.replace('\\"', '"') if quoted is not None else match.group("bare")
        fields[match.group("key")] = value
    return fields


def summarize(lines: Iterable[str], top: int = 5) -> dict[str, object]:
    levels: Counter[str] = Counter()
    services: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    error_services: Counter[str] = Counter()
    first = last = None
    total = unparsed = 0
    for raw in lines:
        line = raw.rstrip("\n")
        if not line.strip():
            continue
        total += 1
        match = LINE.match(line)
        if not match:
            unparsed += 1
            continue
        level = LEVEL_ALIASES.get(match.group("level"), match.group("level"))
        fields = parse_fields(match.group("rest"))
        service = fields.get("service", "-")
        levels[level] += 1
        services[service] += 1
        first = first or match.group("ts")
        last = match.group("ts")
        if level in ERROR_LEVELS:
            errors[fields.get("msg", "(no message)")] += 1
            error_services[service] += 1
    return {
        "lines": total,
        "unparsed": unparsed,
        "first": first,
        "last": last,
        "levels": dict(sorted(levels.items())),
        "services": dict(sorted(services.items())),
        "errors_per_service": dict(error_services.most_common()),
        "top_errors": [{"msg": msg, "count": n} for msg, n in errors.most_common(top)],
    }


def render_text(summary: dict[str, object]) -> str:
    out = [
        (
            f"{summary['lines']} lines ({summary['unparsed']} unparsed), "
            f"{summary['first']} .. {summary['last']}"
        )
    ]
    for title in ("levels", "services", "errors_per_service"):
        counts = summary[title]
        assert isinstance(counts, dict)
        out.append(f"{title}: " + ", ".join(f"{k}={v}" for k, v in counts.items()))
    out.append("top errors:")
    top_errors = summary["top_errors"]
    assert isinstance(top_errors, list)
    out.extend(f"  {item['count']:>4}  {item['msg']}" for item in top_errors)
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("logfile", nargs="?", default="-", help="log file (default: stdin)")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.add_argument("--top", type=int, default=5, help="how many error messages to list")
    args = parser.parse_args(argv)
    if args.logfile == "-":
        summary = summarize(sys.stdin, args.top)
    else:
        try:
            with open(args.logfile, encoding="utf-8", errors="replace") as fh:
                summary = summarize(fh, args.top)
        except OSError as exc:
            print(f"error: cannot read {args.logfile}: {exc.strerror}", file=sys.stderr)
            return 2
    if args.format == "json":
        print(json.dumps(summary, indent=2))
    else:
        print(render_text(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

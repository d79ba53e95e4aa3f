#!/usr/bin/env python3
"""Column statistics of a CSV file (standard library only).

Usage: summarize.py [CSVFILE] [--format text|json] [--delimiter ,] [--top N]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import Counter
from typing import TextIO


def to_number(value: str) -> float | None:
    try:
        return float(value.replace(",", "")) if value.strip() else None
    except ValueError:
        return None


def summarize(stream: TextIO, delimiter: str = ",", top: int = 3) -> dict[str, object]:
    reader = csv.DictReader(stream, delimiter=delimiter)
    columns = list(reader.fieldnames or [])
    values: dict[str, list[str]] = {c: [] for c in columns}
    rows = 0
    for row in reader:
        rows += 1
        for column in columns:
            values[column].append((row.get(column) or "").strip())
    stats: dict[str, dict[str, object]] = {}
    for column in columns:
        present = [v for v in values[column] if v]
        numbers = [to_number(v) for v in present]
        entry: dict[str, object] = {"count": len(present), "missing": rows - len(present)}
        if present and all(n is not None for n in numbers):
            nums = [n for n in numbers if n is not None]
            entry.update(
                type="number", min=min(nums), max=max(nums), mean=round(sum(nums) / len(nums), 4)
            )
        else:
            entry.update(
                type="text",
                distinct=len(set(present)),
                top=[[v, n] for v, n in Counter(present).most_common(top)],
            )
        stats[column] = entry
    return {"rows": rows, "columns": stats}


def render_text(summary: dict[str, object]) -> str:
    out = [f"rows: {summary['rows']}"]
    columns = summary["columns"]
    assert isinstance(columns, dict)
    for name, entry in columns.items():
        details = ", ".join(f"{k}={v}" for k, v in entry.items())
        out.append(f"{name}: {details}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csvfile", nargs="?", default="-")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.add_argument("--delimiter", default=",")
    parser.add_argument("--top", type=int, default=3)
    args = parser.parse_args(argv)
    try:
        if args.csvfile == "-":
            summary = summarize(sys.stdin, args.delimiter, args.top)
        else:
            with open(args.csvfile, newline="", encoding="utf-8-sig") as fh:
                summary = summarize(fh, args.delimiter, args.top)
    except (OSError, csv.Error) as exc:
        print(f"error: cannot read {args.csvfile}: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2) if args.format == "json" else render_text(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

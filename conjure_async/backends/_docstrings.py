"""A native tool's description and parameter descriptions, from its Google docstring.

Parsing is ``docstring-parser``'s, told every Google section so that one ends
the one before it: ``Keyword Args:`` and ``Other Parameters:`` describe
parameters as ``Args:`` does; ``Warns:``, ``Note:``, ``See Also:``... describe
none. A docstring it cannot parse (an ``Args:`` entry without a colon) still
gives its description; its parameters then go undescribed.
"""

from __future__ import annotations

from docstring_parser import ParseError
from docstring_parser.google import DEFAULT_SECTIONS, GoogleParser, Section, SectionType

__all__ = ["parse_docstring"]

_MORE_SECTIONS = [
    *(
        Section(title, "param", SectionType.MULTIPLE)
        for title in ("Keyword Args", "Keyword Arguments", "Other Parameters")
    ),
    Section("Warns", "warns", SectionType.MULTIPLE),
    *(
        Section(title, "notes", SectionType.SINGULAR)
        for title in (
            "Note",
            "Notes",
            "Warning",
            "Warnings",
            "See Also",
            "Todo",
            "References",
            "Methods",
        )
    ),
]
_GOOGLE = GoogleParser([*DEFAULT_SECTIONS, *_MORE_SECTIONS])
_TEXT_ONLY = GoogleParser(
    [Section(s.title, "notes", SectionType.SINGULAR) for s in (*DEFAULT_SECTIONS, *_MORE_SECTIONS)]
)
"""Knows the same titles but reads no entries (for a docstring the first cannot parse)."""


def parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """Split a Google docstring into its description and its parameters' descriptions.

    Args:
        doc: The docstring (``inspect.getdoc(function)``), or ``None``.

    Returns:
        The text before the first section (summary and body, blank lines kept),
        and each documented parameter's description on one line.
    """
    try:
        parsed = _GOOGLE.parse(doc)
    except ParseError:
        parsed = _TEXT_ONLY.parse(doc)
    params = {
        param.arg_name: " ".join((param.description or "").split()) for param in parsed.params
    }
    return (parsed.description or "").strip(), params

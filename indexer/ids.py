"""The rules for document ids, applied everywhere an id enters (pure).

An id is what a user types to replace, delete or fetch a document, so it
must survive a command line, a URL and a JSON round trip unchanged:

- a string (a JSON integer is accepted and written in decimal: 17 -> "17");
- not empty, and no leading or trailing white space (" x" and "x" would
  look the same in every listing but be two documents);
- no control characters (C0/C1, including NUL and newlines), no line or
  paragraph separators, and no lone surrogates (text that cannot be encoded);
- at most `MAX_ID_CHARS` characters.

`check_id` is the one implementation: the indexer (records, deletions,
`arsearch delete`) and the service (`/api/documents/<id>`) call it.
"""

import unicodedata

MAX_ID_CHARS = 512
# Unicode general categories an id may not contain: Cc control characters,
# Cs surrogates, Zl LINE SEPARATOR, Zp PARAGRAPH SEPARATOR.
FORBIDDEN_CATEGORIES = frozenset(("Cc", "Cs", "Zl", "Zp"))


class IdError(ValueError):
    """An id that breaks the rules; the message says which rule."""


def check_id(value) -> str:
    """The id as a string, or IdError naming the rule it breaks."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise IdError(f"id must be a string, got {type(value).__name__}")
    if isinstance(value, int):
        value = str(value)
    if not value:
        raise IdError("id is empty")
    if len(value) > MAX_ID_CHARS:
        raise IdError(f"id is too long: {len(value)} characters, at most {MAX_ID_CHARS}")
    if value != value.strip():
        raise IdError(f"id {value[:40]!r} has leading or trailing white space")
    for i, ch in enumerate(value):
        if unicodedata.category(ch) in FORBIDDEN_CATEGORIES:
            raise IdError(
                f"id contains a forbidden character U+{ord(ch):04X} at position {i + 1} "
                "(control characters, line breaks and lone surrogates are not allowed)"
            )
    return value

"""Read documents from JSON Lines, CSV, a folder of text files or stdin.

Pure Python (no Whoosh): every input becomes a stream of `Document` or
`BadRecord` items, so the caller decides whether to skip (default) or stop
(strict mode) and can report each problem as FILE:LINE: reason.
"""

import csv
import hashlib
import json
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator, Optional, Union

FIELDS = ("id", "title", "text", "url", "date", "source", "tags", "deleted")
TEXT_SUFFIXES = (".txt", ".md")
BOM = "\ufeff"
ARABIC_COMMA = "\u060c"


@dataclass
class Document:
    id: str
    title: str
    text: str
    url: Optional[str] = None
    date: Optional[datetime] = None
    source: Optional[str] = None
    tags: list = field(default_factory=list)
    where: str = ""  # FILE:LINE, for messages


@dataclass
class Deletion:
    """A record {"id": ..., "deleted": true}: remove that document."""

    id: str
    where: str = ""


@dataclass
class BadRecord:
    where: str
    reason: str

    def __str__(self):
        return f"{self.where}: {self.reason}"


@dataclass
class Warning_:
    where: str
    message: str

    def __str__(self):
        return f"{self.where}: warning: {self.message}"


Item = Union[Document, Deletion, BadRecord, Warning_]
TRUE_WORDS = (True, "true", "1", "yes")


class RecordError(ValueError):
    """A record that cannot be indexed; the message says what to fix."""


def parse_date(value) -> Optional[datetime]:
    """ISO 8601 date or date-time; naive values are taken as UTC."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise RecordError(f"date must be an ISO 8601 string, got {type(value).__name__}")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise RecordError(f"bad date {value!r}: expected ISO 8601 such as 2015-01-24") from None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(timezone.utc).replace(tzinfo=None)
    return parsed


def parse_tags(value) -> list:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        parts = value.replace(ARABIC_COMMA, ",").split(",")
    elif isinstance(value, list):
        if not all(isinstance(v, str) for v in value):
            raise RecordError("tags must be strings")
        parts = value
    else:
        raise RecordError(f"tags must be a list or a comma-separated string, got {type(value).__name__}")
    tags = []
    for part in parts:
        part = part.strip()
        if part and part not in tags:
            tags.append(part)
    return tags


def _optional_string(record, key) -> Optional[str]:
    value = record.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise RecordError(f"{key} must be a string, got {type(value).__name__}")
    return value


def derived_id(title: str, text: str) -> str:
    """A stable id from the content, so re-indexing the same record replaces it."""
    digest = hashlib.sha1(f"{title}\n{text}".encode("utf-8", "surrogatepass")).hexdigest()
    return f"sha1-{digest[:16]}"


def make_document(record: dict, where: str) -> tuple:
    """Validate one record; returns (Document, warning or None) or raises RecordError."""
    if not isinstance(record, dict):
        raise RecordError(f"expected a JSON object, got {type(record).__name__}")
    if record.get("deleted") in TRUE_WORDS:
        doc_id = record.get("id")
        if not isinstance(doc_id, str) or not doc_id.strip():
            raise RecordError("a deletion needs a string id")
        return Deletion(doc_id, where), None
    text = record.get("text")
    if text is None:
        raise RecordError("missing text")
    if not isinstance(text, str):
        raise RecordError(f"text must be a string, got {type(text).__name__}")
    if not text.strip():
        raise RecordError("text is empty")
    title = record.get("title")
    if title is None:
        title = ""
    if not isinstance(title, str):
        raise RecordError(f"title must be a string, got {type(title).__name__}")
    warning = None
    doc_id = record.get("id")
    if doc_id is None or doc_id == "":
        doc_id = derived_id(title, text)
        warning = Warning_(where, f"no id; using {doc_id} derived from the content")
    elif not isinstance(doc_id, str):
        raise RecordError(f"id must be a string, got {type(doc_id).__name__} {doc_id!r}")
    elif not doc_id.strip():
        raise RecordError("id is blank")
    doc = Document(
        id=doc_id,
        title=title,
        text=text,
        url=_optional_string(record, "url"),
        date=parse_date(record.get("date")),
        source=_optional_string(record, "source"),
        tags=parse_tags(record.get("tags")),
        where=where,
    )
    return doc, warning


def _validated(record, where) -> Iterator[Item]:
    try:
        doc, warning = make_document(record, where)
    except RecordError as exc:
        yield BadRecord(where, str(exc))
        return
    if warning:
        yield warning
    yield doc


def _decoded_lines(stream, name) -> Iterator[tuple]:
    """(line number, text or None when the line is not UTF-8) for a binary stream."""
    for number, raw in enumerate(stream, 1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield number, None, f"invalid UTF-8 (byte {exc.start + 1} of the line)"
            continue
        if number == 1 and line.startswith(BOM):
            line = line[1:]
        yield number, line, None


def read_jsonl(stream, name: str) -> Iterator[Item]:
    for number, line, problem in _decoded_lines(stream, name):
        where = f"{name}:{number}"
        if problem:
            yield BadRecord(where, problem)
            continue
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            yield BadRecord(where, f"invalid JSON: {exc.msg} (column {exc.colno})")
            continue
        yield from _validated(record, where)


def read_csv(stream, name: str) -> Iterator[Item]:
    numbered = []

    def lines():
        for number, line, problem in _decoded_lines(stream, name):
            if problem:
                numbered.append(BadRecord(f"{name}:{number}", problem))
                continue
            yield line

    reader = csv.reader(lines())
    header = None
    record_start = 1
    for row in reader:
        yield from numbered
        numbered.clear()
        where = f"{name}:{record_start}"
        record_start = reader.line_num + 1
        if header is None:
            header = [h.strip().lower() for h in row]
            if "text" not in header:
                yield BadRecord(where, f"CSV header has no 'text' column (found: {', '.join(header)})")
                return
            continue
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            yield BadRecord(where, f"expected {len(header)} fields, found {len(row)}")
            continue
        record = {k: v for k, v in zip(header, row) if k in FIELDS}
        yield from _validated(record, where)
    yield from numbered


def read_folder(folder: Path) -> Iterator[Item]:
    paths = sorted(
        p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES
    )
    for path in paths:
        rel = path.relative_to(folder).as_posix()
        data = path.read_bytes()
        try:
            content = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data.count(b"\n", 0, exc.start) + 1
            yield BadRecord(f"{path}:{line}", "invalid UTF-8")
            continue
        content = content.removeprefix(BOM)
        first, _, rest = content.partition("\n")
        title = first.strip().lstrip("#").strip()
        body = rest if rest.strip() else content
        yield from _validated({"id": rel, "title": title, "text": body}, f"{path}:1")


class ByteCounter:
    """Counts bytes consumed from inputs, for a progress bar with a total."""

    def __init__(self):
        self.done = 0

    def lines(self, stream):
        for line in stream:
            self.done += len(line)
            yield line


def input_size(spec: str) -> Optional[int]:
    """Bytes in one input, or None when unknown (standard input)."""
    if spec == "-":
        return None
    path = Path(spec)
    try:
        if path.is_dir():
            return sum(
                p.stat().st_size for p in path.rglob("*")
                if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES
            )
        return path.stat().st_size
    except OSError:
        return None


def read_input(spec: str, stdin=None, counter: Optional[ByteCounter] = None) -> Iterator[Item]:
    """Documents from one command-line input: FILE.jsonl, FILE.csv, FOLDER or -."""
    counter = counter or ByteCounter()
    if spec == "-":
        stream = stdin if stdin is not None else sys.stdin.buffer
        yield from read_jsonl(counter.lines(stream), "<stdin>")
        return
    path = Path(spec)
    if path.is_dir():
        for item in read_folder(path):
            if isinstance(item, Document):
                counter.done += len(item.text.encode("utf-8", "surrogatepass"))
            yield item
        return
    if not path.exists():
        yield BadRecord(spec, "no such file or folder")
        return
    if not path.is_file():
        yield BadRecord(spec, "not a regular file or folder")
        return
    with path.open("rb") as f:
        if path.suffix.lower() == ".csv":
            yield from read_csv(counter.lines(f), spec)
        else:
            yield from read_jsonl(counter.lines(f), spec)

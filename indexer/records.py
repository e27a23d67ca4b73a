"""Read documents from JSON Lines, CSV, a folder of text files or stdin.

Pure Python (no Whoosh): every input becomes a stream of `Document` or
`BadRecord` items, so the caller decides whether to skip (default) or stop
(strict mode) and can report each problem as FILE:LINE: reason.

Inputs are checked before anything is read (`resolve_inputs`): a missing,
unreadable or unsupported input is an `InputError`, so a typo on the command
line can never be mistaken for an input with no records.

One record never stops a run: whatever a record holds (invalid UTF-8 or
JSON, JSON nested a thousand levels deep, text that cannot be encoded, a
field over the CSV module's limit, a record over the size limit), it becomes
a `BadRecord` and reading goes on with the next one.
"""

import csv
import gzip
import hashlib
import json
import os
import stat
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Iterator, List, Optional, Union

from indexer import dates
from indexer.ids import IdError, check_id

FIELDS = ("id", "title", "text", "url", "date", "source", "tags", "deleted")
STRING_FIELDS = ("title", "text", "url", "source")
TEXT_SUFFIXES = (".txt", ".md")
# File name endings and the format they are read as; each may also end in .gz.
FORMAT_SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}
FORMATS = ("jsonl", "csv")
GZIP_SUFFIX = ".gz"
BOM = "\ufeff"
ARABIC_COMMA = "\u060c"
# The largest record accepted, in bytes as read (a JSON Lines line, a CSV
# row, a text file). Bigger records are reported and skipped; the
# `--max-record-mb` option of `arsearch index` changes it.
DEFAULT_MAX_RECORD_BYTES = 10 * 1024 * 1024
READ_CHUNK = 1 << 20


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


class InputError(ValueError):
    """Command-line inputs that cannot be read; nothing was read or written."""


def parse_date(value) -> Optional[datetime]:
    """A record's date (the one ISO 8601 parser, indexer.dates), or RecordError."""
    try:
        return dates.parse_date(value)
    except dates.DateError as exc:
        raise RecordError(str(exc)) from None


def _check_encodable(name, value: str) -> str:
    """`value`, or RecordError when it holds a lone surrogate (not valid Unicode).

    JSON can escape one (\\ud800); such text cannot be written as UTF-8, so
    every page and API response showing it would fail.
    """
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise RecordError(
            f"{name} contains a lone surrogate U+{ord(value[exc.start]):04X} at character "
            f"{exc.start + 1}: not valid Unicode text"
        ) from None
    return value


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
        part = _check_encodable("a tag", part.strip())
        if part and part not in tags:
            tags.append(part)
    return tags


def _optional_string(record, key) -> Optional[str]:
    value = record.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise RecordError(f"{key} must be a string, got {type(value).__name__}")
    return _check_encodable(key, value)


def derived_id(title: str, text: str) -> str:
    """A stable id from the content, so re-indexing the same record replaces it."""
    digest = hashlib.sha1(f"{title}\n{text}".encode("utf-8", "surrogatepass")).hexdigest()
    return f"sha1-{digest[:16]}"


def _record_id(record) -> Optional[str]:
    """The record's id under the rules of `indexer.ids`; None when it has none."""
    if "id" not in record or record["id"] is None:
        return None
    try:
        return check_id(record["id"])
    except IdError as exc:
        raise RecordError(str(exc)) from None


def make_document(record: dict, where: str) -> tuple:
    """Validate one record; returns (Document, warning or None) or raises RecordError."""
    if not isinstance(record, dict):
        raise RecordError(f"expected a JSON object, got {type(record).__name__}")
    doc_id = _record_id(record)
    if record.get("deleted") in TRUE_WORDS:
        if doc_id is None:
            raise RecordError("a deletion needs an id")
        return Deletion(doc_id, where), None
    text = record.get("text")
    if text is None:
        raise RecordError("missing text")
    if not isinstance(text, str):
        raise RecordError(f"text must be a string, got {type(text).__name__}")
    if not text.strip():
        raise RecordError("text is empty")
    _check_encodable("text", text)
    title = _optional_string(record, "title") or ""
    warning = None
    if doc_id is None:
        doc_id = derived_id(title, text)
        warning = Warning_(where, f"no id; using {doc_id} derived from the content")
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


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n:,} bytes"


def too_big(size: int, limit: int) -> str:
    return (f"record is {_size(size)}, over the {_size(limit)} limit per record "
            "(--max-record-mb raises it)")


class ByteCounter:
    """Counts bytes consumed from inputs, for a progress bar with a total."""

    def __init__(self):
        self.done = 0


def _bounded_lines(stream, limit: int, counter: ByteCounter) -> Iterator[tuple]:
    """(line number, raw bytes or None, size) for each line of a binary stream.

    A line longer than `limit` bytes is consumed in chunks and never held
    whole: it comes out as None with its size, for a "too big" report.
    """
    number = 0
    while True:
        raw = stream.readline(limit + 1)
        if not raw:
            return
        number += 1
        counter.done += len(raw)
        if len(raw) <= limit or raw.endswith(b"\n") and len(raw) == limit + 1:
            yield number, raw, len(raw)
            continue
        size = len(raw)
        while not raw.endswith(b"\n"):
            raw = stream.readline(READ_CHUNK)
            if not raw:
                break
            size += len(raw)
            counter.done += len(raw)
        yield number, None, size


def _decode(raw: bytes, number: int):
    """(text, problem): a line as text, or why it is not UTF-8."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, f"invalid UTF-8 (byte {exc.start + 1} of the line)"
    if number == 1 and line.startswith(BOM):
        line = line[1:]
    return line, None


def read_jsonl(stream, name: str, max_record_bytes=DEFAULT_MAX_RECORD_BYTES,
               counter: Optional[ByteCounter] = None) -> Iterator[Item]:
    counter = counter or ByteCounter()
    for number, raw, size in _bounded_lines(stream, max_record_bytes, counter):
        where = f"{name}:{number}"
        if raw is None:
            yield BadRecord(where, too_big(size, max_record_bytes))
            continue
        line, problem = _decode(raw, number)
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
        except RecursionError:
            yield BadRecord(where, "invalid JSON: nested too deeply")
            continue
        except ValueError as exc:  # e.g. an integer of more than 4,300 digits
            yield BadRecord(where, f"invalid JSON: {exc}")
            continue
        yield from _validated(record, where)


def read_csv(stream, name: str, max_record_bytes=DEFAULT_MAX_RECORD_BYTES,
             counter: Optional[ByteCounter] = None) -> Iterator[Item]:
    counter = counter or ByteCounter()
    undecodable = []

    def lines():
        for number, raw in enumerate(stream, 1):
            counter.done += len(raw)
            line, problem = _decode(raw, number)
            if problem:
                undecodable.append(BadRecord(f"{name}:{number}", problem))
                continue
            yield line

    # The csv module refuses cells over its field limit (131,072 characters
    # by default, process-wide); records are bounded by our own limit instead.
    csv.field_size_limit(max(max_record_bytes, 1))
    reader = csv.reader(lines())
    header = None
    record_start = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            # The reader skips to the next line: report this record and go on.
            yield from undecodable
            undecodable.clear()
            reason = str(exc)
            if "field larger than field limit" in reason:
                reason = f"a field is over the {_size(max_record_bytes)} limit per record (--max-record-mb raises it)"
            yield BadRecord(f"{name}:{record_start}", f"invalid CSV: {reason}")
            record_start = reader.line_num + 1
            continue
        yield from undecodable
        undecodable.clear()
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
        size = sum(len(cell.encode("utf-8")) for cell in row)
        if size > max_record_bytes:
            yield BadRecord(where, too_big(size, max_record_bytes))
            continue
        record = {k: v for k, v in zip(header, row) if k in FIELDS}
        if record.get("id") == "":
            del record["id"]  # an empty id cell: a record without an id
        yield from _validated(record, where)
    yield from undecodable


def folder_files(folder: Path) -> list:
    return sorted(
        p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES
    )


def read_folder(folder: Path, max_record_bytes=DEFAULT_MAX_RECORD_BYTES,
                counter: Optional[ByteCounter] = None) -> Iterator[Item]:
    counter = counter or ByteCounter()
    for path in folder_files(folder):
        rel = path.relative_to(folder).as_posix()
        try:
            size = path.stat().st_size
            if size > max_record_bytes:
                yield BadRecord(f"{path}:1", too_big(size, max_record_bytes))
                continue
            data = path.read_bytes()
        except OSError as exc:
            yield BadRecord(f"{path}:1", f"cannot read: {exc.strerror}")
            continue
        counter.done += len(data)
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


@dataclass(frozen=True)
class Input:
    """One command-line input, checked: what it is and how it is read."""

    spec: str  # as given on the command line
    kind: str  # "stdin", "folder" or "file"
    format: Optional[str] = None  # "jsonl" or "csv" for stdin and files
    gzip: bool = False

    def size(self) -> Optional[int]:
        """Bytes to read (compressed size for .gz), or None when unknown."""
        try:
            if self.kind == "folder":
                return sum(p.stat().st_size for p in folder_files(Path(self.spec)))
            if self.kind == "file":
                return Path(self.spec).stat().st_size or None
        except OSError:
            pass
        return None


def _file_format(path: Path, forced: Optional[str]):
    """(format, gzip) of a file input, or InputError naming what is supported."""
    name = path.name.lower()
    compressed = name.endswith(GZIP_SUFFIX)
    if compressed:
        name = name[: -len(GZIP_SUFFIX)]
    if forced:
        return forced, compressed
    for suffix, fmt in FORMAT_SUFFIXES.items():
        if name.endswith(suffix):
            return fmt, compressed
    hint = ""
    if name.endswith(TEXT_SUFFIXES):
        hint = "; to index text files, give the folder that holds them"
    raise InputError(
        f"{path}: unsupported input type: give .jsonl, .ndjson or .csv files (optionally .gz), "
        f"a folder of .txt/.md files, or - for JSON Lines on stdin; --format jsonl|csv reads "
        f"a file of another name{hint}"
    )


def resolve_input(spec: str, forced_format: Optional[str] = None) -> Input:
    """Check one command-line input without reading it; InputError if unusable."""
    if forced_format is not None and forced_format not in FORMATS:
        raise InputError(f"unknown format {forced_format!r}: use one of {', '.join(FORMATS)}")
    if spec == "-":
        return Input(spec, "stdin", forced_format or "jsonl")
    path = Path(spec)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise InputError(f"{spec}: no such file or folder") from None
    except OSError as exc:
        raise InputError(f"{spec}: cannot read: {exc.strerror}") from None
    if stat.S_ISDIR(mode):
        if not os.access(path, os.R_OK | os.X_OK):
            raise InputError(f"{spec}: cannot read this folder: permission denied")
        if not folder_files(path):
            raise InputError(f"{spec}: no .txt or .md files in this folder")
        return Input(spec, "folder")
    fmt, compressed = _file_format(path, forced_format)
    if not os.access(path, os.R_OK):
        raise InputError(f"{spec}: cannot read this file: permission denied")
    if stat.S_ISREG(mode):
        try:
            with path.open("rb"):
                pass
        except OSError as exc:
            raise InputError(f"{spec}: cannot read: {exc.strerror}") from None
    return Input(spec, "file", fmt, compressed)


def resolve_inputs(specs, forced_format: Optional[str] = None) -> List[Input]:
    """Check every input; one InputError listing every problem found."""
    inputs, problems = [], []
    for spec in specs:
        try:
            inputs.append(resolve_input(str(spec), forced_format))
        except InputError as exc:
            problems.append(str(exc))
    if problems:
        raise InputError("\n".join(problems))
    return inputs


def input_size(spec) -> Optional[int]:
    """Bytes in one input, or None when unknown (standard input)."""
    item = spec if isinstance(spec, Input) else None
    if item is None:
        try:
            item = resolve_input(str(spec))
        except InputError:
            return None
    return item.size()


class _CompressedProgress:
    """Progress for a .gz input counted in compressed bytes (its size on disk)."""

    def __init__(self, raw, counter):
        self.raw, self.counter, self.base = raw, counter, counter.done

    def update(self):
        self.counter.done = self.base + self.raw.tell()


def read_input(spec, stdin=None, counter: Optional[ByteCounter] = None,
               max_record_bytes=DEFAULT_MAX_RECORD_BYTES) -> Iterator[Item]:
    """Documents from one command-line input: FILE.jsonl, FILE.csv, FOLDER or -."""
    counter = counter or ByteCounter()
    item = spec if isinstance(spec, Input) else resolve_input(str(spec))
    if item.kind == "folder":
        yield from read_folder(Path(item.spec), max_record_bytes, counter)
        return
    reader = read_csv if item.format == "csv" else read_jsonl
    if item.kind == "stdin":
        stream = stdin if stdin is not None else sys.stdin.buffer
        yield from reader(stream, "<stdin>", max_record_bytes, counter)
        return
    with open(item.spec, "rb") as raw:
        if not item.gzip:
            yield from reader(raw, item.spec, max_record_bytes, counter)
            return
        progress = _CompressedProgress(raw, counter)
        with gzip.open(raw, "rb") as stream:
            try:
                for record in reader(stream, item.spec, max_record_bytes, ByteCounter()):
                    progress.update()
                    yield record
            except (OSError, EOFError, gzip.BadGzipFile) as exc:
                yield BadRecord(item.spec, f"cannot decompress the rest of the file: {exc}")

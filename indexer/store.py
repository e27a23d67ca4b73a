"""Where an index lives on disk: generations, the version stamp, the writer lock.

Layout of an index directory DIR:

    DIR/arsearch.lock        one writer at a time (flock; freed if the process dies)
    DIR/current -> gen-...   symlink to the live generation, swapped atomically
    DIR/gen-.../             a Whoosh index plus arsearch.json (analysis version,
                             last commit time)

Incremental updates commit into the live generation (Whoosh commits are
atomic: a new TOC file is written last). `--rebuild` builds a new generation
beside it and swaps the symlink only when the build is complete, so a reader
never sees a half-built index. The previous generation is kept until the next
swap, for readers that still have it open.
"""

import errno
import fcntl
import json
import os
import shutil
import time
from datetime import datetime, timezone
from pathlib import Path

from whoosh import index as whoosh_index
from whoosh.filedb.filestore import FileStorage

from indexer.analysis import ANALYSIS_VERSION

LOCK_NAME = "arsearch.lock"
CURRENT = "current"
META_NAME = "arsearch.json"
GENERATION_PREFIX = "gen-"
META_FORMAT = 1


class IndexError_(Exception):
    """An index that cannot be used; the message says what to do."""


class IndexVersionError(IndexError_):
    pass


class IndexMissingError(IndexError_):
    pass


class LockedError(IndexError_):
    pass


def rebuild_hint(directory) -> str:
    return f"rebuild it: arsearch index --rebuild --index {directory} INPUT..."


def live_path(directory) -> Path:
    """The generation directory readers should open (follows `current`)."""
    directory = Path(directory)
    link = directory / CURRENT
    if link.is_symlink() or link.is_dir():
        return link.resolve()
    return directory


def has_index(directory) -> bool:
    # Look for a TOC file rather than calling whoosh.index.exists_in, which
    # unpickles the schema and would raise for an index from another version.
    path = live_path(directory)
    return path.is_dir() and any(path.glob("_MAIN_*.toc"))


def read_meta(generation: Path) -> dict:
    try:
        return json.loads((generation / META_NAME).read_text("utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        return {}


def write_meta(generation: Path, **updates) -> dict:
    meta = read_meta(generation)
    meta.setdefault("format", META_FORMAT)
    meta.setdefault("created", _now())
    meta["analysis_version"] = ANALYSIS_VERSION
    meta.update(updates)
    tmp = generation / (META_NAME + ".tmp")
    tmp.write_text(json.dumps(meta, ensure_ascii=False, indent=1), "utf-8")
    os.replace(tmp, generation / META_NAME)
    return meta


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def check_version(directory) -> Path:
    """The live generation, or IndexVersionError when it needs a rebuild."""
    if not has_index(directory):
        raise IndexMissingError(
            f"no index at {directory}: create one with arsearch index --index {directory} INPUT..."
        )
    generation = live_path(directory)
    meta = read_meta(generation)
    version = meta.get("analysis_version")
    if version != ANALYSIS_VERSION:
        found = "an unknown version" if version is None else f"analysis version {version}"
        raise IndexVersionError(
            f"the index at {directory} was built with {found}, but this arsearch "
            f"uses analysis version {ANALYSIS_VERSION}; {rebuild_hint(directory)}"
        )
    return generation


def open_index(directory):
    """Open the live generation for reading, after the version check.

    Whoosh unpickles the schema, analyzer objects included, when it opens an
    index; an index from another arsearch can fail there with an import or
    pickle error, which becomes the same rebuild message.
    """
    generation = check_version(directory)
    try:
        ix = open_generation(generation)
        _ = ix.schema  # unpickles the TOC now, not at the first search
        return ix
    except Exception as exc:  # unpickling can raise almost anything
        raise IndexVersionError(
            f"the index at {directory} cannot be read by this arsearch ({type(exc).__name__}); "
            f"{rebuild_hint(directory)}"
        ) from None


def open_generation(generation):
    """Open one generation's Whoosh index without mmap.

    With mmap, Whoosh reads a compound segment file by copying each of its
    sub-files into memory (BytesIO over a memoryview): about the index size
    in RAM on top of the page cache (seen: +440 MB for a 640 MB index).
    Plain reads cost nothing up front.
    """
    return FileStorage(str(generation), supports_mmap=False).open_index()


def new_generation(directory) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    for n in range(1000):
        path = directory / f"{GENERATION_PREFIX}{stamp}-{os.getpid()}-{n}"
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise IndexError_(f"cannot create a new generation in {directory}")


def create_generation(directory, schema):
    """A new, empty generation (not live until `publish`)."""
    generation = new_generation(directory)
    ix = whoosh_index.create_in(str(generation), schema)
    write_meta(generation)
    return generation, ix


def publish(directory, generation: Path) -> None:
    """Make `generation` the live one atomically, then drop older ones."""
    directory = Path(directory)
    previous = live_path(directory) if (directory / CURRENT).is_symlink() else None
    tmp = directory / f"{CURRENT}.tmp-{os.getpid()}"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(generation.name, tmp)
    os.replace(tmp, directory / CURRENT)
    keep = {generation.resolve()}
    if previous is not None:
        keep.add(previous)
    for path in directory.glob(GENERATION_PREFIX + "*"):
        if path.is_dir() and path.resolve() not in keep:
            shutil.rmtree(path, ignore_errors=True)


def discard(generation: Path) -> None:
    shutil.rmtree(generation, ignore_errors=True)


class WriterLock:
    """One indexer per index directory; a second one waits or is told who holds it."""

    def __init__(self, directory, wait: float = 0.0):
        self.directory = Path(directory)
        self.wait = wait
        self.fd = None

    def __enter__(self):
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / LOCK_NAME
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self.wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    raise
                if time.monotonic() >= deadline:
                    holder = _read_holder(fd)
                    os.close(fd)
                    raise LockedError(
                        f"another arsearch process{holder} is writing to {self.directory}; "
                        f"wait for it to finish, or pass --wait SECONDS to queue behind it"
                    ) from None
                time.sleep(0.2)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {_now()}\n".encode())
        self.fd = fd
        return self

    def __exit__(self, *exc):
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


def _read_holder(fd) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 200).decode("ascii", "replace").split()
        if len(text) >= 2:
            return f" (pid {text[0]}, since {text[1]})"
    except OSError:
        pass
    return ""


def disk_size(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())

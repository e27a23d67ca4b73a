"""Where an index lives on disk: generations, the version stamp, the writer lock.

Layout of an index directory DIR:

    DIR/arsearch.lock        one writer at a time (flock; freed if the process dies)
    DIR/current -> gen-...   symlink to the live generation, swapped atomically
    DIR/previous -> gen-...  the generation before the last swap, kept for
                             readers that still have it open
    DIR/gen-.../             a Whoosh index plus arsearch.json (analysis version,
                             last commit time) and checksums.json (size and
                             SHA-256 of every file of the last commit)

Incremental updates commit into the live generation (Whoosh commits are
atomic: a new TOC file is written last). `--rebuild` builds a new generation
beside it and swaps the symlink only when the build is complete, so a reader
never sees a half-built index. The previous generation is kept until the next
swap, for readers that still have it open; any other `gen-*` folder is what a
killed `--rebuild` left, and the next writer removes it.

Every commit records the size and SHA-256 of each file it references
(`record_checksums`); opening an index compares sizes (a truncated or
missing file is refused with its name), and `arsearch check` compares
checksums.
"""

import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import time
from datetime import datetime, timezone
from pathlib import Path

from whoosh import index as whoosh_index
from whoosh.filedb.filestore import FileStorage

from indexer import query_file
from indexer.analysis import ANALYSIS_VERSION

LOCK_NAME = "arsearch.lock"
CURRENT = "current"
PREVIOUS = "previous"
META_NAME = "arsearch.json"
CHECKSUMS_NAME = "checksums.json"
INDEX_NAME = "MAIN"  # Whoosh's default index name inside a generation
TOC_PATTERN = re.compile(r"^_%s_([0-9]+)\.toc$" % INDEX_NAME)
SEGMENT_PATTERN = re.compile(r"^(%s_[0-9a-z]+)\.[A-Za-z0-9_.]+$" % INDEX_NAME)
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


class IndexDamagedError(IndexError_):
    """A file of the live generation is missing, truncated or altered."""


def rebuild_hint(directory) -> str:
    return f"rebuild it: arsearch index --rebuild --index {directory} INPUT..."


def live_path(directory) -> Path:
    """The generation directory readers should open (follows `current`)."""
    directory = Path(directory)
    link = directory / CURRENT
    if link.is_symlink() or link.is_dir():
        return link.resolve()
    return directory


def toc_generation(name: str) -> int:
    """Whoosh's commit number of a TOC file name (_MAIN_10.toc -> 10), or -1.

    Compared as numbers: as strings _MAIN_10 sorts before _MAIN_9.
    """
    match = TOC_PATTERN.match(name)
    return int(match.group(1)) if match else -1


def latest_toc(generation) -> str:
    """The name of the newest TOC file in a generation folder ("" if none)."""
    try:
        names = os.listdir(generation)
    except OSError:
        return ""
    return max((n for n in names if TOC_PATTERN.match(n)), key=toc_generation, default="")


def has_index(directory) -> bool:
    # Look for a TOC file rather than calling whoosh.index.exists_in, which
    # unpickles the schema and would raise for an index from another version.
    path = live_path(directory)
    return path.is_dir() and bool(latest_toc(path))


def check_index_directory(directory, must_exist: bool) -> Path:
    """The index directory, or a one-line IndexError_ before anything is created.

    `--index FILE` (a regular file), a missing index for commands that read
    one, and a non-empty folder that is not an arsearch index (a mistyped
    --index must not fill a home folder with gen-* folders) are refused.
    """
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise IndexError_(f"{directory} is a file, not an index directory")
    if must_exist:
        if not has_index(directory):
            raise IndexMissingError(
                f"no index at {directory}: create one with arsearch index --index {directory} INPUT..."
            )
        return directory
    if directory.is_dir() and not has_index(directory):
        ours = (LOCK_NAME, CURRENT, PREVIOUS)
        foreign = [p.name for p in directory.iterdir()
                   if p.name not in ours and not p.name.startswith(GENERATION_PREFIX)]
        if foreign:
            raise IndexError_(
                f"{directory} is not empty and holds no arsearch index (found {foreign[0]}); "
                "give a new or empty folder for a new index"
            )
    return directory


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
    verify_sizes(generation, directory)
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


def _swap_link(directory: Path, name: str, target: str) -> None:
    tmp = directory / f"{name}.tmp-{os.getpid()}"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(target, tmp)
    os.replace(tmp, directory / name)


def _link_target(directory: Path, name: str):
    link = directory / name
    return link.resolve() if link.is_symlink() else None


def publish(directory, generation: Path) -> None:
    """Make `generation` the live one atomically, then drop older ones."""
    directory = Path(directory)
    previous = _link_target(directory, CURRENT)
    _swap_link(directory, CURRENT, generation.name)
    if previous is not None and previous != generation.resolve():
        _swap_link(directory, PREVIOUS, previous.name)
    remove_stale_generations(directory)


def remove_stale_generations(directory) -> list:
    """Delete every gen-* folder that is neither current nor previous.

    Those are what a killed --rebuild left behind (or older generations no
    reader can still have open). Call with the writer lock held.
    """
    directory = Path(directory)
    keep = {p for p in (_link_target(directory, CURRENT), _link_target(directory, PREVIOUS)) if p}
    removed = []
    for path in directory.glob(GENERATION_PREFIX + "*"):
        if path.is_dir() and not path.is_symlink() and path.resolve() not in keep:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path.name)
    return removed


def discard(generation: Path) -> None:
    shutil.rmtree(generation, ignore_errors=True)


class WriterLock:
    """One indexer per index directory; a second one waits or is told who holds it."""

    def __init__(self, directory, wait: float = 0.0):
        self.directory = Path(directory)
        self.wait = wait
        self.fd = None

    def __enter__(self):
        if self.directory.exists() and not self.directory.is_dir():
            raise IndexError_(f"{self.directory} is a file, not an index directory")
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


# -- checksums


def referenced_files(generation) -> list:
    """Names of the files the newest commit of a generation uses: its TOC and
    the files of its segments (the Whoosh index, without arsearch's own files).

    Query files (`.arq`, indexer.query_file) are left out: they are derived
    from the segments, checked when opened and rebuilt when unusable, so a
    damaged one costs a rebuild, never the index.
    """
    toc = latest_toc(generation)
    if not toc:
        return []
    ix = open_generation(generation)
    segment_ids = {s.segment_id() for s in ix._segments()}
    names = [toc]
    for name in sorted(os.listdir(generation)):
        match = SEGMENT_PATTERN.match(name)
        if match and match.group(1) in segment_ids and not name.endswith(query_file.SUFFIX):
            names.append(name)
    return names


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_checksums(generation) -> dict:
    """The recorded {"toc": name, "files": {name: {"size", "sha256"}}}, or {}."""
    try:
        data = json.loads((Path(generation) / CHECKSUMS_NAME).read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) and isinstance(data.get("files"), dict) else {}


def record_checksums(generation) -> dict:
    """Record the size and SHA-256 of every file of the newest commit.

    Segment files never change once written, so a file already recorded with
    the same size and modification time keeps its checksum: a commit hashes
    only the files it wrote.
    """
    generation = Path(generation)
    old = read_checksums(generation).get("files", {})
    files = {}
    for name in referenced_files(generation):
        st = (generation / name).stat()
        known = old.get(name)
        if known and known.get("size") == st.st_size and known.get("mtime_ns") == st.st_mtime_ns:
            files[name] = known
        else:
            files[name] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns,
                           "sha256": _sha256(generation / name)}
    data = {"format": 1, "toc": latest_toc(generation), "files": files}
    tmp = generation / (CHECKSUMS_NAME + ".tmp")
    tmp.write_text(json.dumps(data, indent=1), "utf-8")
    os.replace(tmp, generation / CHECKSUMS_NAME)
    return data


def damage_hint(directory) -> str:
    return (f"run arsearch check --index {directory} for a full report, then restore the "
            f"index from a backup or {rebuild_hint(directory)}")


def verify_sizes(generation, directory=None) -> None:
    """IndexDamagedError naming the first file whose size is not the recorded one.

    Cheap (a stat per file), so it runs whenever an index is opened. Only
    files the newest TOC still uses are compared: between a commit's TOC and
    its checksums a reader can see new files not yet recorded.
    """
    generation = Path(generation)
    recorded = read_checksums(generation).get("files", {})
    if not recorded:
        return
    directory = directory or generation
    toc = latest_toc(generation)
    for name, info in recorded.items():
        if TOC_PATTERN.match(name) and name != toc:
            continue  # an older commit's TOC, replaced since
        path = generation / name
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            if TOC_PATTERN.match(name) or SEGMENT_PATTERN.match(name) and _segment_in_use(generation, name):
                raise IndexDamagedError(
                    f"the index at {directory} is damaged: {path} is missing; {damage_hint(directory)}"
                ) from None
            continue
        if size != info.get("size"):
            raise IndexDamagedError(
                f"the index at {directory} is damaged: {path} is {size:,} bytes, the commit "
                f"wrote {info.get('size'):,}; {damage_hint(directory)}"
            )


def _segment_in_use(generation, name) -> bool:
    """Whether the newest TOC still names the segment of file `name`.

    Without unpickling the TOC (a damaged one would raise): the segment id
    is stored in the TOC as text.
    """
    toc = latest_toc(generation)
    segid = SEGMENT_PATTERN.match(name).group(1)[len(INDEX_NAME) + 1:]
    try:
        return segid.encode() in (Path(generation) / toc).read_bytes()
    except OSError:
        return True


def verify_checksums(generation) -> tuple:
    """(damaged, unrecorded): lists of (file name, reason) and names.

    `damaged`: a recorded file that is missing or whose size or SHA-256
    differs. `unrecorded`: files the newest commit uses that have no
    recorded checksum (a commit made by another program, or an index
    written before checksums were recorded).
    """
    generation = Path(generation)
    recorded = read_checksums(generation).get("files", {})
    toc = latest_toc(generation)
    damaged = []
    for name, info in sorted(recorded.items()):
        if TOC_PATTERN.match(name) and name != toc:
            continue
        path = generation / name
        if not path.exists():
            damaged.append((name, "missing"))
            continue
        size = path.stat().st_size
        if size != info.get("size"):
            damaged.append((name, f"{size:,} bytes, the commit wrote {info.get('size'):,}"))
        elif _sha256(path) != info.get("sha256"):
            damaged.append((name, "contents differ from the recorded SHA-256"))
    try:
        in_use = referenced_files(generation) if not damaged else []
    except Exception:
        in_use = []
    unrecorded = [name for name in in_use if name not in recorded]
    return damaged, unrecorded

"""Index documents into a directory: validation, replace-by-id, parallel segments.

With --jobs N > 1, documents are routed by a hash of their id to N worker
processes; each writes its own Whoosh segment(s) with `FastSegmentWriter`,
and the parent commits them in one TOC. Whoosh's own multiprocessing writer
commits even when a worker died and silently drops that worker's documents;
here every worker reports how many documents its segments hold, and the
parent commits only when the total equals the documents it accepted.
"""

import multiprocessing
import os
import queue
import sys
import time
import zlib
from dataclasses import dataclass, field


import schema as schema_module
from indexer import store
from indexer.records import (
    DEFAULT_MAX_RECORD_BYTES,
    BadRecord,
    ByteCounter,
    Deletion,
    Document,
    Warning_,
    read_input,
    resolve_inputs,
)
from indexer.segment_writer import FastSegmentWriter

BATCH = 64  # documents per message to a worker
SMALL_INPUT_BYTES = 2_000_000  # below this, one process is faster than forking
CRASH_ENV = "ARSEARCH_TEST_CRASH_ON_ID"  # fault injection for tests: a worker dies on this id


class BuildError(Exception):
    """The run failed and committed nothing; the message says why."""


@dataclass
class BuildReport:
    added: int = 0
    replaced: int = 0
    deleted: int = 0
    skipped: int = 0
    warnings: int = 0
    accepted: int = 0  # documents and deletions read without a problem
    seconds: float = 0.0
    committed: bool = False
    documents: int = 0  # in the index after the run
    problems: list = field(default_factory=list)

    def summary(self) -> str:
        state = "committed" if self.committed else "NOTHING COMMITTED"
        return (
            f"added {self.added}, replaced {self.replaced}, deleted {self.deleted}, "
            f"skipped {self.skipped} in {self.seconds:.1f} s ({state}; "
            f"{self.documents} documents in the index)"
        )


class SegmentBuilder:
    """Adds documents to new segments of `ix` without touching its TOC.

    Handles repeated ids within one run: the later record wins, the earlier
    document is marked deleted in the new segment.
    """

    def __init__(self, ix):
        self.writer = FastSegmentWriter(ix, _lk=False, query_fields=schema_module.QUERY_FIELDS)
        self.where = {}  # id -> (segment ordinal, docnum)
        self.dead = []
        self.crash_id = os.environ.get(CRASH_ENV)

    def add(self, fields):
        doc_id = fields["id"]
        if doc_id == self.crash_id:
            os._exit(70)
        self._forget(doc_id)
        place = (len(self.writer.flushed_segments), self.writer.docnum)
        self.writer.add_document(**fields)
        self.where[doc_id] = place

    def delete(self, doc_id) -> bool:
        return self._forget(doc_id)

    def _forget(self, doc_id) -> bool:
        place = self.where.pop(doc_id, None)
        if place is not None:
            self.dead.append(place)
        return place is not None

    def finish(self) -> list:
        writer = self.writer
        segments = list(writer.flushed_segments)
        if writer._added:
            segments.append(writer._finalize_segment())
        else:
            writer._close_segment()
        for ordinal, docnum in self.dead:
            segments[ordinal].delete_document(docnum)
        writer.write_query_files(segments)  # here, in parallel workers, not in the parent
        # The temp folder is shared by every writer of this index; the
        # parent's writer removes it when it commits or cancels.
        writer.is_closed = True
        return segments

    def abort(self):
        writer = self.writer
        segments = list(writer.flushed_segments) + [writer.newsegment]
        try:
            writer._close_segment()
        except Exception:
            pass
        writer.is_closed = True
        delete_segment_files(writer.storage, segments)


def delete_segment_files(storage, segments):
    prefixes = tuple(s.segment_id() for s in segments)
    for name in list(storage.list()):
        if name.startswith(prefixes):
            try:
                storage.delete_file(name)
            except OSError:
                pass


def live_count(segments) -> int:
    return sum(s.doc_count() for s in segments)


def _die_with_parent(parent_pid):
    """Ask Linux to kill this worker when the parent dies (even by SIGKILL).

    Workers inherit the parent's lock file descriptors; an orphaned worker
    would keep the index locked. The inbox timeout below is the fallback
    where prctl is not available.
    """
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent_pid:
        os._exit(1)


def _worker_main(generation, inbox, results, number, parent_pid):
    """Child process: build segments from batches until told to finish."""
    _die_with_parent(parent_pid)
    try:
        import signal

        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides
        ix = store.open_generation(generation)
        builder = SegmentBuilder(ix)
        while True:
            try:
                message = inbox.get(timeout=2.0)
            except queue.Empty:
                if os.getppid() != parent_pid:
                    builder.abort()
                    os._exit(1)
                continue
            kind = message[0]
            if kind == "docs":
                for fields in message[1]:
                    builder.add(fields)
            elif kind == "delete":
                builder.delete(message[1])
            elif kind == "finish":
                segments = builder.finish()
                results.put(("ok", number, segments, live_count(segments)))
                return
            elif kind == "abort":
                builder.abort()
                results.put(("aborted", number, [], 0))
                return
    except BaseException as exc:  # reported to the parent, which commits nothing
        results.put(("error", number, f"{type(exc).__name__}: {exc}", 0))
        raise


class _InProcess:
    """The jobs=1 path: same builder, no processes."""

    def __init__(self, ix):
        self.builder = SegmentBuilder(ix)

    def add(self, fields):
        self.builder.add(fields)

    def delete(self, doc_id):
        self.builder.delete(doc_id)

    def finish(self):
        segments = self.builder.finish()
        return segments, live_count(segments)

    def abort(self):
        self.builder.abort()


class _Workers:
    def __init__(self, generation, jobs):
        ctx = multiprocessing.get_context("fork")
        self.results = ctx.Queue()
        self.inboxes = [ctx.Queue(maxsize=64) for _ in range(jobs)]
        self.pending = [[] for _ in range(jobs)]
        self.aborted = False
        self.procs = [
            ctx.Process(
                target=_worker_main,
                args=(generation, self.inboxes[i], self.results, i, os.getpid()),
                name=f"arsearch-indexer-{i}", daemon=True,
            )
            for i in range(jobs)
        ]
        for p in self.procs:
            p.start()

    def _route(self, doc_id) -> int:
        return zlib.crc32(doc_id.encode("utf-8", "surrogatepass")) % len(self.inboxes)

    def _put(self, i, message):
        while True:
            try:
                self.inboxes[i].put(message, timeout=1.0)
                return
            except queue.Full:
                if not self.procs[i].is_alive():
                    raise BuildError(self._death(i)) from None

    def _death(self, i):
        return (
            f"indexing worker {i} died (exit code {self.procs[i].exitcode}); "
            "nothing from this run was committed"
        )

    def add(self, fields):
        i = self._route(fields["id"])
        self.pending[i].append(fields)
        if len(self.pending[i]) >= BATCH:
            self._put(i, ("docs", self.pending[i]))
            self.pending[i] = []

    def delete(self, doc_id):
        i = self._route(doc_id)
        if self.pending[i]:
            self._put(i, ("docs", self.pending[i]))
            self.pending[i] = []
        self._put(i, ("delete", doc_id))

    def finish(self):
        for i, batch in enumerate(self.pending):
            if batch:
                self._put(i, ("docs", batch))
            self._put(i, ("finish",))
        segments, count, reported = [], 0, set()
        while len(reported) < len(self.procs):
            try:
                status, number, payload, n = self.results.get(timeout=0.5)
            except queue.Empty:
                dead = [i for i, p in enumerate(self.procs) if i not in reported and not p.is_alive()]
                if dead:
                    # A worker may have put its result just before exiting.
                    try:
                        status, number, payload, n = self.results.get(timeout=2.0)
                    except queue.Empty:
                        self.abort()
                        raise BuildError(self._death(dead[0])) from None
                else:
                    continue
            reported.add(number)
            if status != "ok":
                self.abort()
                raise BuildError(f"indexing worker {number} failed ({payload}); nothing was committed")
            segments.extend(payload)
            count += n
        for p in self.procs:
            p.join(timeout=10)
        return segments, count

    def abort(self):
        if self.aborted:
            return
        self.aborted = True
        for i, p in enumerate(self.procs):
            if p.is_alive():
                try:
                    self.inboxes[i].put(("abort",), timeout=0.5)
                except queue.Full:
                    p.terminate()
        for p in self.procs:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()
                p.join(timeout=10)
        self._release_queues()

    def _release_queues(self):
        # A queue's feeder thread flushes what is still buffered when the
        # process exits; with a dead reader on the other side that flush
        # blocks forever (the parent would report the failure, then hang).
        # Nothing buffered is wanted any more: drop it.
        for q in self.inboxes + [self.results]:
            q.cancel_join_thread()
            q.close()


def choose_jobs(jobs, inputs) -> int:
    if jobs is not None:
        return max(1, jobs)
    sizes = [item.size() for item in inputs]
    if all(s is not None for s in sizes) and sum(sizes) < SMALL_INPUT_BYTES:
        return 1
    return max(1, os.cpu_count() or 1)


def build_index(directory, inputs, *, rebuild=False, strict=False, jobs=None, wait=0.0,
                progress=None, log=None, stdin=None, allow_empty=False,
                max_record_bytes=DEFAULT_MAX_RECORD_BYTES, input_format=None) -> BuildReport:
    """Index `inputs` into `directory`; raises BuildError or store errors on failure.

    Inputs and the directory are checked first (`records.InputError`,
    `store.IndexError_`): a typo fails before anything is created or written.
    """
    log = log or (lambda line: print(line, file=sys.stderr))
    inputs = resolve_inputs(inputs, input_format)
    directory = store.check_index_directory(directory, must_exist=False)
    report = BuildReport()
    started = time.monotonic()
    with store.WriterLock(directory, wait=wait):
        for name in store.remove_stale_generations(directory):
            log(f"removed {directory / name}, left by an interrupted rebuild")
        fresh = rebuild or not store.has_index(directory)
        if fresh:
            generation, ix = store.create_generation(directory, schema_module.build_schema())
        else:
            generation = store.check_version(directory)
            ix = store.open_index(directory)
        try:
            _run(ix, generation, inputs, fresh, strict, choose_jobs(jobs, inputs),
                 report, progress, log, stdin, allow_empty, max_record_bytes)
        except BaseException:
            if fresh:
                store.discard(generation)
            raise
        if report.committed and fresh:
            store.publish(directory, generation)
        if not report.committed and fresh:
            store.discard(generation)
    report.seconds = time.monotonic() - started
    return report


def _refusal(report, fresh, accepted_docs, allow_empty):
    """Why this run must not commit, or None."""
    if report.skipped and not report.accepted:
        return (f"every record was bad ({report.skipped} skipped, listed above); "
                "nothing was committed")
    if fresh and not accepted_docs and not allow_empty:
        return ("this build accepted 0 documents, so it would publish an EMPTY index; "
                "nothing was committed and the index is as it was "
                "(--allow-empty publishes an empty index on purpose)")
    return None


def _run(ix, generation, inputs, fresh, strict, jobs, report, progress, log, stdin,
         allow_empty=False, max_record_bytes=DEFAULT_MAX_RECORD_BYTES):
    writer = FastSegmentWriter(ix, query_fields=schema_module.QUERY_FIELDS)  # holds Whoosh's lock; deletes from committed segments
    sink = _InProcess(ix) if jobs == 1 else _Workers(generation, jobs)
    before = ix.doc_count()
    live_ids = set()  # ids whose latest record in this run is a document
    gone = set()  # ids already removed from the committed segments

    def remove_committed(doc_id) -> bool:
        if fresh or doc_id in gone:
            return False
        gone.add(doc_id)
        return writer.delete_by_term("id", doc_id) > 0

    counter = ByteCounter()
    try:
        for spec in inputs:
            for item in read_input(spec, stdin=stdin, counter=counter,
                                   max_record_bytes=max_record_bytes):
                stopped = strict and report.skipped
                if isinstance(item, (Document, Deletion)) and not stopped:
                    report.accepted += 1
                if isinstance(item, Document) and not stopped:
                    existed = remove_committed(item.id) or item.id in live_ids
                    live_ids.add(item.id)
                    sink.add(schema_module.document_fields(item))
                    if existed:
                        report.replaced += 1
                    else:
                        report.added += 1
                elif isinstance(item, Deletion) and not stopped:
                    existed = remove_committed(item.id) or item.id in live_ids
                    if item.id in live_ids:
                        live_ids.discard(item.id)
                        sink.delete(item.id)
                    if existed:
                        report.deleted += 1
                elif isinstance(item, BadRecord):
                    report.skipped += 1
                    report.problems.append(str(item))
                    log(str(item))
                elif isinstance(item, Warning_):
                    report.warnings += 1
                    log(str(item))
                if progress is not None:
                    progress(counter.done, report)
        if strict and report.skipped:
            sink.abort()
            writer.cancel()
            log(f"strict mode: {report.skipped} bad record(s); nothing was committed")
            return
        segments, count = sink.finish()
    except BaseException:
        sink.abort()
        if not writer.is_closed:
            writer.cancel()
        raise
    problem = None
    if count != len(live_ids):
        problem = (f"the new segments hold {count} documents but {len(live_ids)} were accepted; "
                   "nothing was committed")
    problem = problem or _refusal(report, fresh, len(live_ids), allow_empty)
    if problem:
        delete_segment_files(writer.storage, segments)
        writer.cancel()
        raise BuildError(problem)
    writer.flushed_segments.extend(segments)
    writer.commit(merge=not fresh)
    store.write_meta(generation, last_commit=store._now())
    store.record_checksums(generation)
    report.committed = True
    with store.open_generation(generation).searcher() as s:
        report.documents = s.doc_count()
    wanted = before + report.added - report.deleted
    if report.documents != wanted:
        raise BuildError(
            f"after commit the index holds {report.documents} documents, expected {wanted}"
        )

"""The gunicorn worker `arsearch serve` runs: gthread, hardened against slow clients.

gunicorn's threaded worker serves requests on a pool of threads that share
the process's one `SearchEngine`, and keeps idle keep-alive connections in a
poller (no thread). A sync worker is a single thread: two clients sending one
header line every 2 s stopped the whole service until the worker timeout
killed them. gthread alone is not enough either: once a request's first byte
arrives, a pool thread reads the rest with blocking reads and no time limit,
so a client that sends one byte and stops holds that thread for as long as it
keeps the connection open (the worker timeout never fires: the worker's main
loop still reports alive), and as many slow clients as threads stop a worker.

This subclass adds:

- Request heads are received in the poller: the bytes of a request line and
  headers are collected without a thread, and a thread is taken only once the
  head is complete (or malformed, or larger than MAX_HEAD_BYTES). A slow
  client costs a socket, not a thread.
- A deadline: a client gets REQUEST_READ_TIMEOUT seconds to send its request
  line and headers (per request; keep-alive idle time does not count). Past
  it, it gets a JSON 408 and the connection is closed. Checked about once a
  second. The same deadline bounds a thread that still has to read from the
  socket (a head larger than MAX_HEAD_BYTES, a pipelined partial request).
- gunicorn's own rejections (request line or headers too large, malformed
  requests) are written by gunicorn, before Flask sees anything, as HTML; here
  they are JSON in the API's shape, `{"error": {"status", "message"}}`. The
  path of a rejected request is unknown or untrustworthy, so they are JSON
  everywhere.
- Connections spread evenly over the workers. The workers share one listening
  socket and whichever wakes first accepts, so a burst of new connections
  often lands on one worker (8 keep-alive clients: 8/0 or 6/2 was common),
  and a keep-alive connection stays with the worker that accepted it: one
  worker's threads shared one GIL while the other worker idled (131 q/s at
  8/0 against 363 at 6/2 on the same index). Each worker publishes its open
  connection count in a table shared by the workers (an anonymous shared map
  made in the master, one slot per live worker, handed out by the
  `pre_fork`/`child_exit` hooks in gunicorn_conf.py); a worker takes new
  connections only while it has no more than any other live worker, so the
  one with the fewest always accepts. A worker that is stopping leaves the
  table at once, and one that has died when the master reaps it; a
  connection that no worker has taken for UNCLAIMED_AFTER seconds (the one
  with the fewest is hung) is taken by whichever sees it.

This module is imported by gunicorn's master process: stdlib and gunicorn
only (the app, numpy and Whoosh load in the workers).
"""

import errno
import json
import mmap
import os
import re
import select
import selectors
import socket
import threading
import time
from functools import partial

from gunicorn import util
from gunicorn.workers import gthread

# Seconds a client has to send the request line and headers ($ARSEARCH_READ_TIMEOUT).
REQUEST_READ_TIMEOUT = float(os.environ.get("ARSEARCH_READ_TIMEOUT") or 10)
# A head this large goes to a thread unfinished: gunicorn's own limits
# (4094-byte request line, 100 fields of 8190 bytes) then apply as they read.
MAX_HEAD_BYTES = 64 * 1024
MAX_DETAIL_CHARS = 200  # of gunicorn's message, which may quote the request line
# The end of a head, or a bare LF, which gunicorn rejects at once.
_HEAD_READY = re.compile(rb"\r\n\r\n|(?<!\r)\n")

# What the client can do about each rejection gunicorn makes itself.
HINTS = {
    400: "malformed HTTP request",
    403: "request refused",
    408: (f"the request line and headers did not arrive within {REQUEST_READ_TIMEOUT:g} s; "
          "send the whole request at once"),
    414: "request line too long: shorten the URL",
    417: "unsupported Expect header",
    431: "request headers too large or too many: send fewer or shorter headers",
    500: "internal error while serving the request; the server log has the details",
    501: "unsupported transfer coding",
}
_TIMED_OUT = object()  # marks a connection the deadline has closed

# The shared table of open connections per worker slot (-1: no live worker).
# Made here, at import in the master, so that every forked worker maps the
# same pages; aligned 8-byte cells, each written by its one worker.
MAX_SLOTS = 64
ABSENT = -1
_table = mmap.mmap(-1, MAX_SLOTS * 8)  # MAP_SHARED: writes are seen across fork
CONNECTIONS = memoryview(_table).cast("q")
CONNECTIONS[:] = memoryview(bytes.fromhex("ff" * 8) * MAX_SLOTS).cast("q")
# How often a worker that holds back re-reads the table (it is not woken when
# another worker's count changes).
BALANCE_RECHECK = 0.02
# A worker holding back takes a connection all the same once it has waited
# this long: the worker whose turn it is may be stuck.
UNCLAIMED_AFTER = 0.25


def assign_slot(worker, live_workers):
    """The master's `pre_fork` hook: the lowest slot no live worker holds."""
    taken = {getattr(w, "arsearch_slot", None) for w in live_workers}
    worker.arsearch_slot = next((i for i in range(MAX_SLOTS) if i not in taken), None)
    if worker.arsearch_slot is not None:
        # Absent until the worker has booted and starts accepting: a booting
        # worker must not hold the others back.
        CONNECTIONS[worker.arsearch_slot] = ABSENT


def release_slot(worker):
    """The master's `child_exit` hook: the worker is gone, its count with it."""
    slot = getattr(worker, "arsearch_slot", None)
    if slot is not None:
        CONNECTIONS[slot] = ABSENT


def json_error(status: int, reason: str, detail: str = "") -> bytes:
    """A complete HTTP/1.1 response carrying the API's JSON error for `status`."""
    from search_app.app import RESPONSE_HEADERS  # loaded in a worker already; never in the master

    hint = HINTS.get(status, reason)
    detail = " ".join(detail.split())[:MAX_DETAIL_CHARS]
    message = f"{hint}; {detail}" if detail and status != 500 else hint
    body = json.dumps({"error": {"status": status, "message": message}}).encode("utf-8")
    head = [f"HTTP/1.1 {status} {reason}", "Connection: close",
            "Content-Type: application/json", f"Content-Length: {len(body)}"]
    head += [f"{name}: {value}" for name, value in RESPONSE_HEADERS.items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


def write_json_error(sock, status_int, reason, mesg):
    """Drop-in for `gunicorn.util.write_error`, which writes an HTML page."""
    util.write_nonblock(sock, json_error(status_int, reason, mesg))


class ThreadWorker(gthread.ThreadWorker):
    """gunicorn's gthread worker; heads read in the poller, a read deadline, JSON errors."""

    read_timeout = REQUEST_READ_TIMEOUT

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Main thread only: connections whose head is arriving -> [bytes so far, deadline].
        self._heads = {}
        # Connections a pool thread is reading a request from: conn -> deadline,
        # or _TIMED_OUT once the deadline has shut the connection's read side.
        self._reading = {}
        self._reading_lock = threading.Lock()
        self._poll_heads = False
        self._held_back = False  # not accepting only to leave connections to a less busy worker
        self._waiting_since = None  # when a held-back worker first saw a connection waiting
        self._listeners = None  # a poll object over the listening sockets

    def init_process(self):
        # gunicorn's base worker writes its rejections with util.write_error,
        # looked up at call time; replacing it in this (forked) worker process
        # is the one hook gunicorn offers for them. Never done in the master.
        util.write_error = write_json_error
        # Plain HTTP/1 only: TLS and HTTP/2 connections start with a handshake
        # that gunicorn reads itself, so those are left to gthread as it is.
        self._poll_heads = (not self.cfg.is_ssl and self.cfg.http2_cleartext == "off"
                            and getattr(self.cfg, "protocol", "http") == "http")
        super().init_process()  # runs the worker's loop

    # -- receiving heads in the poller (main thread)

    def accept(self, listener):
        if not self._poll_heads:
            return super().accept(listener)
        try:
            sock, addr = listener.accept()
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        self._await_head(gthread.TConn(self.cfg, sock, addr, listener.getsockname()))

    def on_client_socket_readable(self, conn, client):
        """A kept-alive connection has a next request coming."""
        if not self._poll_heads:
            return super().on_client_socket_readable(conn, client)
        self.keepalived_conns.remove(conn)
        self._heads[conn] = [bytearray(), time.monotonic() + self.read_timeout]
        self.poller.modify(client, selectors.EVENT_READ, partial(self._on_head_readable, conn))
        # The request has usually arrived whole: read it now, not after one
        # more select(). Each turn of this loop waits for the GIL, which the
        # pool threads hold while they search.
        self._on_head_readable(conn, client)

    def _await_head(self, conn):
        self._heads[conn] = [bytearray(), time.monotonic() + self.read_timeout]
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_head_readable, conn))

    def _on_head_readable(self, conn, _sock):
        head = self._heads[conn][0]
        try:
            data = conn.sock.recv(MAX_HEAD_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:  # the client went away
            self._stop_waiting(conn)
            self.nr_conns -= 1
            conn.close()
            return
        searched_from = max(0, len(head) - 3)  # a CRLFCRLF may straddle two reads
        head += data
        complete = _HEAD_READY.search(head, searched_from) is not None
        if complete or len(head) >= MAX_HEAD_BYTES:
            deadline = self._stop_waiting(conn)
            # A complete head is only parsed on the thread: the deadline, which
            # may have nearly run out, is for a head the thread still has to read.
            conn.arsearch_head = (bytes(head), None if complete else deadline)
            conn.data_ready = True
            self.enqueue_req(conn)

    def _stop_waiting(self, conn):
        """Stop collecting `conn`'s head; returns its deadline."""
        _, deadline = self._heads.pop(conn)
        try:
            self.poller.unregister(conn.sock)
        except (KeyError, ValueError, OSError):
            pass
        return deadline

    # -- spreading connections over the workers (main thread)

    def _my_turn(self) -> bool:
        """Publish this worker's open connections; whether it may take another."""
        slot = getattr(self, "arsearch_slot", None)
        if slot is None:  # run without gunicorn_conf's hooks: no table
            return True
        if not self.alive:
            CONNECTIONS[slot] = ABSENT  # stopping: it accepts no more, so the others must
            return False
        mine = CONNECTIONS[slot] = self.nr_conns
        counts = CONNECTIONS.tolist()
        counts[slot] = ABSENT
        if all(n < 0 or mine <= n for n in counts):
            self._waiting_since = None
            return True
        return self._unclaimed()

    def _unclaimed(self) -> bool:
        """Whether a connection has waited UNCLAIMED_AFTER seconds on the listening sockets."""
        if self._listeners is None:
            self._listeners = select.poll()
            for listener in self.sockets:
                self._listeners.register(listener, select.POLLIN)
        if not self._listeners.poll(0):
            self._waiting_since = None
            return False
        now = time.monotonic()
        if self._waiting_since is None:
            self._waiting_since = now
        return now - self._waiting_since >= UNCLAIMED_AFTER

    def set_accept_enabled(self, enabled):
        """gthread's switch for accepting; on only while no other worker has fewer connections."""
        turn = self._my_turn()
        self._held_back = enabled and not turn
        super().set_accept_enabled(enabled and turn)

    def wait_for_and_dispatch_events(self, timeout):
        if self._held_back:
            # Not woken when another worker's count changes: look again soon.
            timeout = min(timeout, BALANCE_RECHECK)
        super().wait_for_and_dispatch_events(timeout)
        if self._accepting or self._held_back:
            # After an accept or a close, or with time passing: whose turn now.
            # (gthread's loop turns accepting off itself at worker_connections.)
            self.set_accept_enabled(True)

    # -- serving on a pool thread

    def handle(self, conn):
        """Serve one request on `conn` (a pool thread); see gthread.ThreadWorker.handle."""
        head, deadline = getattr(conn, "arsearch_head", None) or (b"", None)
        conn.arsearch_head = None
        deadline = deadline or time.monotonic() + self.read_timeout
        with self._reading_lock:
            self._reading[conn] = deadline
        try:
            if head:
                conn.sock.setblocking(True)
                conn.init()  # the parser; gunicorn's handle() finds it made
                conn.parser.unreader.unread(head)
            keep = super().handle(conn)
        finally:
            with self._reading_lock:
                timed_out = self._reading.pop(conn, None) is _TIMED_OUT
        if not timed_out:
            return keep
        self._log_timeout(conn)
        try:
            write_json_error(conn.sock, 408, "Request Timeout", "")
        except OSError:
            pass
        return False  # closes the connection

    def handle_request(self, req, conn):
        """The request is read: it may take as long as the app needs from here."""
        with self._reading_lock:
            if self._reading.pop(conn, None) is _TIMED_OUT:
                return False  # the deadline won the race: the 408 goes out instead
        return super().handle_request(req, conn)

    # -- deadlines (main thread, about once a second)

    def murder_pending(self):
        super().murder_pending()
        now = time.monotonic()
        for conn in [c for c, (_, deadline) in self._heads.items() if deadline < now]:
            self._stop_waiting(conn)
            self.nr_conns -= 1
            self._log_timeout(conn)
            try:  # never block the main loop: what fits in the socket buffer
                conn.sock.send(json_error(408, "Request Timeout"), socket.MSG_DONTWAIT)
            except OSError:
                pass
            conn.close()
        with self._reading_lock:
            late = [conn for conn, deadline in self._reading.items()
                    if deadline is not _TIMED_OUT and deadline < now]
            for conn in late:
                self._reading[conn] = _TIMED_OUT
        for conn in late:
            # The pool thread is blocked reading: shutting the read side makes
            # its recv() return end-of-stream; the thread then answers 408.
            try:
                conn.sock.shutdown(socket.SHUT_RD)
            except OSError:
                pass

    def _log_timeout(self, conn):
        self.log.warning("Request from ip=%s not received within %g s: closed",
                         conn.client[0] if conn.client else "", self.read_timeout)

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

This module is imported by gunicorn's master process: stdlib and gunicorn
only (the app, numpy and Whoosh load in the workers).
"""

import errno
import json
import os
import re
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
        self.poller.unregister(client)
        self.keepalived_conns.remove(conn)
        self._await_head(conn)

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

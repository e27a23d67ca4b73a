"""`arsearch serve` under hostile or odd clients: slow clients, gunicorn's own
rejections, OPTIONS, and the headers every response carries."""

import json
import os
import re
import select
import socket
import threading
import time
import urllib.parse

import pytest

from search_app import api
from search_app.app import create_app
from tests.conftest import index_records
from tests.test_serve import Server

DOCS = [
    {"id": "v1", "title": "باب العلم", "text": "قَالَ رَسُولُ اللَّهِ: طَلَبُ الْعِلْمِ فَرِيضَةٌ", "source": "hadith",
     "url": "https://example.org/v1"},
    {"id": "n1", "title": "اجتماع أمني", "text": "عقد اجتماع في الجزائر", "source": "news", "date": "2015-01-24"},
]
SEARCH = "/api/search?q=" + urllib.parse.quote("العلم")
# Well below gunicorn's worker timeout (30 s), which is what ended a sync
# worker's wait for a slow client: an answer this late means the service stalled.
PROMPT = 5.0


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hardening")
    index_records(folder / "ix", DOCS)
    return folder / "ix"


def serve_env(tmp_path, **extra):
    env = dict(os.environ, HOME=str(tmp_path / "home"), ARSEARCH_LOG_LEVEL="warning", **extra)
    os.makedirs(env["HOME"], exist_ok=True)
    return env


@pytest.fixture(scope="module")
def server(index, tmp_path_factory):
    running = Server("--index", index, env=serve_env(tmp_path_factory.mktemp("serve")))
    yield running
    running.stop()


def raw_exchange(port, data: bytes, timeout=20.0):
    """Send raw bytes, read until the server closes: (status, headers, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        return read_response(s)


def read_response(s):
    """Read until the server closes; gunicorn's rejections say Connection: close."""
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    assert data, "the server closed the connection without answering"
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


class SlowClient:
    """A connection that sends its request line, then one header line per `interval` s."""

    def __init__(self, port, interval):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.sock.sendall(b"GET " + SEARCH.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        self.stopped = threading.Event()
        self.lines = 0
        self.thread = threading.Thread(target=self._drip, args=(interval,), daemon=True)
        self.thread.start()

    def _drip(self, interval):
        # Not synchronisation: the pauses *are* the slow client being simulated.
        while not self.stopped.wait(interval):
            try:
                self.sock.sendall(b"X-Slow-%d: 1\r\n" % self.lines)
            except OSError:
                return  # the server closed the connection
            self.lines += 1

    def close(self):
        self.stopped.set()
        self.thread.join(10)
        self.sock.close()


def timed_get(server, path):
    started = time.monotonic()
    status, ctype, _ = server.get(path)
    return status, ctype, time.monotonic() - started


# -- slow clients


def test_slow_clients_do_not_stop_the_service(index, tmp_path):
    # Six clients each sending one header line every 2 s: more than the two
    # worker processes (with sync workers each held a whole process, and normal
    # requests queued behind them until the worker timeout, 30 s, killed them)
    # and more than their 2 x 2 threads (gthread alone gives each a thread).
    server = Server("--index", index, env=serve_env(tmp_path, ARSEARCH_THREADS="2"))
    slow = []
    try:
        slow = [SlowClient(server.port, interval=2.0) for _ in range(6)]
        for _ in range(6):
            status, ctype, seconds = timed_get(server, SEARCH)
            assert status == 200 and "application/json" in ctype
            assert seconds < PROMPT, f"a normal request took {seconds:.1f} s next to slow clients"
        assert server.get_json("/healthz")[0] == 200
    finally:
        for client in slow:
            client.close()
        server.stop()


def test_a_request_that_is_not_sent_in_time_gets_a_json_408(index, tmp_path):
    # gunicorn's gthread worker has no such limit: a client that stops
    # mid-request would hold its thread for as long as it kept the connection.
    server = Server("--index", index, env=serve_env(tmp_path, ARSEARCH_READ_TIMEOUT="1"))
    dripping, others = None, []
    try:
        started = time.monotonic()
        dripping = SlowClient(server.port, interval=0.3)  # keeps sending, never finishes
        idle = socket.create_connection(("127.0.0.1", server.port), timeout=30)
        idle.sendall(b"G")  # one byte, then nothing
        # A head too large to wait for without a thread (72 KB of headers, each
        # within gunicorn's limits), unfinished: the thread reading it is cut off too.
        large = socket.create_connection(("127.0.0.1", server.port), timeout=30)
        large.sendall(b"GET /healthz HTTP/1.1\r\n" + b"".join(b"X-Big-%d: %s\r\n" % (i, b"b" * 8000)
                                                             for i in range(9)))
        others = [idle, large]
        for sock in (dripping.sock, idle, large):
            status, headers, body = read_response(sock)
            assert status == 408
            assert headers["content-type"] == "application/json"
            assert json.loads(body)["error"]["status"] == 408
        # 1 s limit, checked once a second; generous margin for a loaded machine.
        assert time.monotonic() - started < 10
        assert dripping.lines >= 1  # it was still sending when it was cut off
        assert server.get_json("/healthz")[0] == 200
    finally:
        if dripping:
            dripping.close()
        for sock in others:
            sock.close()
        server.stop()


def send_slowly(sock, path, last=False):
    """One request, a line every 0.5 s: 2 s in all. Before each line the client
    watches the connection for its 0.5 s: the server, waiting for the rest of a
    timely request, must neither answer nor hang up."""
    lines = (b"GET " + path.encode() + b" HTTP/1.1\r\n", b"Host: 127.0.0.1\r\n",
             b"Connection: close\r\n" if last else b"Accept: application/json\r\n", b"\r\n")
    for line in lines:
        readable, _, _ = select.select([sock], [], [], 0.5)
        assert not readable, "the server answered or closed before the request was complete"
        sock.sendall(line)


def test_the_read_limit_is_per_request_and_spares_slow_but_timely_clients(index, tmp_path):
    # 3 s per request; two requests of 2 s each on one kept-alive connection.
    server = Server("--index", index, env=serve_env(tmp_path, ARSEARCH_READ_TIMEOUT="3"))
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
            send_slowly(s, SEARCH)
            reader = s.makefile("rb")
            assert b" 200 " in reader.readline()
            length = 0
            while (line := reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            assert json.loads(reader.read(length))["total"] == 1
            reader.close()
            send_slowly(s, "/healthz", last=True)  # 4 s since the connection opened
            status, _, body = read_response(s)
            assert status == 200 and json.loads(body)["status"] == "ok"
    finally:
        server.stop()


# -- gunicorn's own rejections are JSON


REJECTED = {
    "request line too long": (b"GET /api/search?q=" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    "too many headers": (b"GET /api/search?q=a HTTP/1.1\r\nHost: x\r\n"
                         + b"".join(b"X-H%d: 1\r\n" % i for i in range(150)) + b"\r\n", 431),
    "header too large": (b"GET /api/search?q=a HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n", 431),
    "malformed request line": (b"NOT-HTTP\r\n\r\n", 400),
    "bad HTTP version": (b"GET /api/search?q=a HTTP/9.9\r\nHost: x\r\n\r\n", 400),
}


@pytest.mark.parametrize("name", REJECTED)
def test_gunicorn_rejections_are_json_errors(server, name):
    request, expected = REJECTED[name]
    status, headers, body = raw_exchange(server.port, request)
    assert status == expected
    assert headers["content-type"] == "application/json"
    assert int(headers["content-length"]) == len(body)
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "same-origin"
    error = json.loads(body)
    assert list(error) == ["error"] and error["error"]["status"] == expected
    assert error["error"]["message"] and "<" not in error["error"]["message"]


def test_options_answers_json_over_http(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=20) as s:
        s.sendall(b"OPTIONS /api/search HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        status, headers, body = read_response(s)
    assert status == 200 and headers["content-type"] == "application/json"
    assert "GET" in headers["allow"]
    assert "GET" in json.loads(body)["allow"]


# -- OPTIONS and response headers, through Flask's test client


@pytest.fixture(scope="module")
def app(index):
    return create_app(index)


def api_urls(app):
    """One concrete URL per API route of the app's url_map."""
    urls = []
    for rule in app.url_map.iter_rules():
        url = re.sub(r"<[^>]+>", "n1", rule.rule)  # the only variable part is a document id
        if api.is_api_path(url):
            urls.append((url, rule.methods))
    return urls


def test_options_on_every_api_route_answers_json_with_allow(app):
    client = app.test_client()
    urls = api_urls(app)
    assert {"/api/search", "/api/documents/n1", "/api/suggest", "/healthz", "/api/openapi.json"} <= {
        u for u, _ in urls}
    for url, methods in urls:
        response = client.options(url)
        assert response.status_code == 200, url
        assert response.is_json, (url, response.content_type)
        allowed = {m.strip() for m in response.headers["Allow"].split(",")}
        assert allowed == set(methods), url
        assert set(response.get_json()["allow"]) == allowed, url


def test_options_on_an_unknown_api_path_is_a_json_404(app):
    response = app.test_client().options("/api/nowhere")
    assert response.status_code == 404 and response.is_json
    assert response.get_json()["error"]["status"] == 404


@pytest.mark.parametrize("method,url", [
    ("GET", SEARCH), ("GET", "/api/search?q="), ("GET", "/api/nowhere"), ("POST", "/api/search?q=x"),
    ("OPTIONS", "/api/search"), ("GET", "/healthz"), ("GET", "/?q=" + urllib.parse.quote("العلم")),
    ("GET", "/doc/v1"), ("GET", "/nowhere"), ("OPTIONS", "/"),
])
def test_every_response_keeps_the_query_out_of_the_referer(app, method, url):
    # same-origin: following a hit's external url from a results page must not
    # send that page's address, which carries the query, to the other site.
    response = app.test_client().open(url, method=method)
    assert response.headers["Referrer-Policy"] == "same-origin", (url, response.status_code)
    assert response.headers["X-Content-Type-Options"] == "nosniff"

"""`arsearch serve` as a real gunicorn process on a free port, queried over HTTP."""

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from tests.conftest import arsearch_command, index_records, wait_for

DOCS = [
    {"id": "v1", "title": "باب العلم", "text": "قَالَ رَسُولُ اللَّهِ: طَلَبُ الْعِلْمِ فَرِيضَةٌ", "source": "hadith"},
    {"id": "n1", "title": "اجتماع أمني", "text": "عقد اجتماع في الجزائر", "source": "news", "date": "2015-01-24"},
]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, *args, env=None):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            arsearch_command() + ["serve", "--host", "127.0.0.1", "--port", str(self.port),
                                  "--workers", "2", *map(str, args)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        )
        try:
            wait_for(self._answers, 120, "the server did not answer /healthz", interval=0.2)
        except AssertionError:
            self.stop()
            raise

    def _answers(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"server exited: {self.proc.stdout.read()}")
        try:
            self.get("/healthz")
            return True
        except (urllib.error.URLError, ConnectionError):
            return False

    def get(self, path):
        try:
            with urllib.request.urlopen(self.base + path, timeout=30) as r:
                return r.status, r.headers.get("Content-Type", ""), r.read().decode("utf-8")
        except urllib.error.HTTPError as e:
            return e.code, e.headers.get("Content-Type", ""), e.read().decode("utf-8")

    def get_json(self, path):
        status, ctype, body = self.get(path)
        assert "application/json" in ctype, (status, ctype, body[:200])
        return status, json.loads(body)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.stdout.read()


@pytest.fixture()
def index(tmp_path):
    index_records(tmp_path / "ix", DOCS)
    return tmp_path / "ix"


@pytest.fixture()
def home(tmp_path):
    """A fresh HOME, so we can see that gunicorn leaves no control socket there."""
    env = dict(os.environ, HOME=str(tmp_path / "home"), ARSEARCH_HOME=str(tmp_path / "cache"))
    os.makedirs(env["HOME"])
    return env


def test_serves_search_documents_and_health_over_http(index, home):
    server = Server("--index", index, env=home)
    try:
        status, health = server.get_json("/healthz")
        assert status == 200 and health["documents"] == 2
        q = urllib.parse.quote("العلم")
        status, result = server.get_json(f"/api/search?q={q}")
        assert status == 200 and result["total"] == 1
        assert "<mark>الْعِلْمِ</mark>" in result["hits"][0]["snippet"]
        status, doc = server.get_json("/api/documents/n1")
        assert status == 200 and doc["id"] == "n1"
        status, error = server.get_json("/api/search?q=")
        assert status == 400 and "q" in json.dumps(error)
        status, ctype, page = server.get(f"/?q={q}")
        assert status == 200 and 'dir="rtl"' in page and "<mark>" in page
    finally:
        server.stop()
    assert not os.path.exists(os.path.join(home["HOME"], ".gunicorn"))


def test_new_documents_are_served_without_restart(index, home, tmp_path):
    server = Server("--index", index, env=home)
    try:
        q = urllib.parse.quote("فرنسا")
        assert server.get_json(f"/api/search?q={q}")[1]["total"] == 0
        more = [{"id": "n2", "title": "زيارة", "text": "وزير من فرنسا يزور الجزائر"}]
        index_records(index, more)
        # Both workers must see it: ask several times.
        totals = {server.get_json(f"/api/search?q={q}")[1]["total"] for _ in range(6)}
        assert totals == {1}
    finally:
        server.stop()


def test_two_servers_run_side_by_side(index, home):
    first = Server("--index", index, env=home)
    try:
        second = Server("--index", index, env=home)
        try:
            assert first.get_json("/healthz")[0] == 200
            assert second.get_json("/healthz")[0] == 200
        finally:
            second.stop()
        assert first.get_json("/healthz")[0] == 200
    finally:
        first.stop()


def test_serve_without_index_uses_the_sample(home):
    server = Server(env=home)
    try:
        q = urllib.parse.quote("الجزائر")
        status, result = server.get_json(f"/api/search?q={q}")
        assert status == 200
        assert "seed-article" in [h["id"] for h in result["hits"]]
    finally:
        server.stop()


def test_serve_with_a_missing_index_says_so(tmp_path, home):
    result = subprocess.run(
        arsearch_command() + ["serve", "--index", str(tmp_path / "nope"), "--port", str(free_port())],
        capture_output=True, text=True, env=home, timeout=60,
    )
    assert result.returncode == 1
    assert "no index at" in result.stderr


def worker_connections(master_pid, port, peer_port=None) -> dict:
    """{worker pid: established connections to `port` (from `peer_port`) it holds} (Linux /proc)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                # local address (hex ip:port), state 01 = ESTABLISHED, inode
                if (int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01"
                        and peer_port in (None, int(fields[2].rsplit(":", 1)[1], 16))):
                    inodes.add(f"socket:[{fields[9]}]")
    counts = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) != master_pid:
                    continue
            fds = os.listdir(f"/proc/{pid}/fd")
            counts[int(pid)] = sum(os.readlink(f"/proc/{pid}/fd/{fd}") in inodes for fd in fds)
        except (FileNotFoundError, ProcessLookupError):
            continue
    return counts


def holder(server, sock) -> int:
    """The pid of the worker that holds the connection `sock` (Linux /proc)."""
    def holding():
        # The worker's end of `sock` is the connection whose peer is sock's local port.
        counts = worker_connections(server.proc.pid, server.port, sock.getsockname()[1])
        return next((pid for pid, n in counts.items() if n), None)

    return wait_for(holding, 10, "no worker held the connection")


def both_workers_accepting(server, request):
    """Wait until both workers have booted and accept (one connection at a time)."""
    seen, deadline = set(), time.monotonic() + 60
    while len(seen) < 2 and time.monotonic() < deadline:
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as c:
            c.sendall(request)
            assert c.recv(65536).startswith(b"HTTP/1.1 200")
            seen.add(holder(server, c))
    assert len(seen) == 2, "the second worker never took a connection"
    # The server closes its ends of those.
    wait_for(lambda: not sum(worker_connections(server.proc.pid, server.port).values()), 30,
             "the workers did not close the probe connections")


def search_request() -> bytes:
    return ("GET /api/search?q=" + urllib.parse.quote("العلم")
            + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").encode("ascii")


@pytest.fixture(scope="module")
def kept_alive(tmp_path_factory):
    """A server for the two tests below; idle connections are kept 60 s, not gunicorn's 2,
    so that the ones a test holds stay with their worker while it looks."""
    folder = tmp_path_factory.mktemp("kept-alive")
    index_records(folder / "ix", DOCS)
    os.makedirs(folder / "home")
    server = Server("--index", folder / "ix", env=dict(os.environ, HOME=str(folder / "home"),
                                                       GUNICORN_CMD_ARGS="--keep-alive 60"))
    yield server
    server.stop()


def test_keep_alive_connections_are_spread_evenly_over_the_workers(kept_alive):
    """A burst of keep-alive clients is shared by both workers, not left to whichever
    woke first: a connection stays with its worker, and one worker's threads share
    one GIL (8 clients on one worker served a third of what 4 + 4 did)."""
    server = kept_alive
    request = search_request()
    clients = []
    try:
        both_workers_accepting(server, request)
        # The burst: all connected at once, then one request each.
        clients = [socket.create_connection(("127.0.0.1", server.port), timeout=30) for _ in range(8)]
        for c in clients:
            c.sendall(request)
        for c in clients:
            assert c.recv(65536).startswith(b"HTTP/1.1 200")
        counts = sorted(worker_connections(server.proc.pid, server.port).values())
        assert counts == [4, 4], counts
    finally:
        for c in clients:
            c.close()


def test_a_hung_worker_does_not_hold_new_connections_back(kept_alive):
    """The worker with fewer connections is stopped (as if stuck): the other one,
    which leaves new connections to it, takes them after a short wait instead of
    until the master's 30 s timeout replaces the stuck one."""
    server = kept_alive
    request = search_request()
    clients, stopped = [], None
    try:
        both_workers_accepting(server, request)
        for _ in range(3):  # two on one worker, one on the other
            clients.append(socket.create_connection(("127.0.0.1", server.port), timeout=30))
            clients[-1].sendall(request)
            assert clients[-1].recv(65536).startswith(b"HTTP/1.1 200")
        counts = worker_connections(server.proc.pid, server.port)
        assert sorted(counts.values()) == [1, 2], counts
        stopped = min(counts, key=counts.get)
        os.kill(stopped, signal.SIGSTOP)
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as c:
            c.sendall(request)
            assert c.recv(65536).startswith(b"HTTP/1.1 200")
        assert time.monotonic() - started < 5  # ~0.25 s; stuck until the 30 s timeout without the fallback
    finally:
        if stopped:
            os.kill(stopped, signal.SIGCONT)
        for c in clients:
            c.close()

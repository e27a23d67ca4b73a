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

from tests.conftest import arsearch_command, index_records

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
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited: {self.proc.stdout.read()}")
            try:
                self.get("/healthz")
                return
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.2)
        self.stop()
        raise AssertionError("server did not start in time")

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

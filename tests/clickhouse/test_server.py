"""The ClickHouse test server (server.py) answers as a ClickHouse server's HTTP interface does, for
the part of it Spanlens uses. Run: target/clickhouse-venv/bin/python -m pytest tests/clickhouse."""

import gzip
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


# A name of this run's own, so runs against one long-lived server do not meet.
RUN = f"r{os.getpid()}_{int(time.time())}"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The server at SPANLENS_TEST_CLICKHOUSE (as scripts/test starts it), else one of our own."""
    given = os.environ.get("SPANLENS_TEST_CLICKHOUSE")
    if given:
        yield given.rstrip("/")
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = tmp_path_factory.mktemp("clickhouse")
    proc = subprocess.Popen(
        [sys.executable, os.path.join(HERE, "server.py"), str(port), str(data)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while True:
        try:
            with urllib.request.urlopen(base + "/ping", timeout=2) as r:
                if r.read() == b"Ok.\n":
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            out, err = proc.communicate()
            pytest.fail(f"the test server did not start: {err.decode()[-2000:]}")
        time.sleep(0.2)
    yield base
    proc.terminate()
    out, err = proc.communicate(timeout=30)
    # It prints nothing but errors.
    assert out == b""


def call(base, params=None, body=None, headers=None):
    """(status, headers, body) of one request; POST when there is a body."""
    url = base + "/?" + urllib.parse.urlencode(params or {})
    req = urllib.request.Request(url, data=body, headers=headers or {}, method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def test_ping_and_a_query_in_the_url_run_the_real_engine(server):
    with urllib.request.urlopen(server + "/ping") as r:
        assert r.read() == b"Ok.\n"
    status, headers, body = call(server, {"query": "SELECT version()"})
    assert status == 200
    major = int(body.decode().split(".")[0])
    assert major >= 24, body
    assert headers["X-ClickHouse-Format"] == "TabSeparated"


def test_a_query_in_the_body_and_the_default_format(server):
    status, _, body = call(server, {"default_format": "JSONEachRow"}, b"SELECT 1 AS a, 'x' AS b")
    assert status == 200
    assert json.loads(body) == {"a": 1, "b": "x"}
    # A FORMAT clause in the query wins.
    status, _, body = call(server, {"default_format": "JSONEachRow"}, b"SELECT 2 AS a FORMAT TabSeparated")
    assert (status, body) == (200, b"2\n")


def test_rows_in_the_body_are_inserted_plain_and_compressed(server):
    db = f"ins_{RUN}"
    assert call(server, {"query": f"CREATE DATABASE {db}"})[0] == 200
    ddl = "CREATE TABLE t (id UInt32, s String) ENGINE = MergeTree ORDER BY id"
    assert call(server, {"database": db, "query": ddl})[0] == 200
    rows = b"1\tone\n2\ttwo\n"
    status, _, body = call(server, {"database": db, "query": "INSERT INTO t FORMAT TabSeparated"}, rows)
    assert (status, body) == (200, b"")
    packed = gzip.compress(b'{"id":3,"s":"three \\"q\\""}\n')
    status, _, body = call(
        server,
        {"database": db, "query": "INSERT INTO t (id, s) FORMAT JSONEachRow"},
        packed,
        {"Content-Encoding": "gzip"},
    )
    assert status == 200, body
    status, _, body = call(server, {"database": db, "query": "SELECT id, s FROM t ORDER BY id FORMAT JSONEachRow"})
    assert [json.loads(line) for line in body.splitlines()] == [
        {"id": 1, "s": "one"},
        {"id": 2, "s": "two"},
        {"id": 3, "s": 'three "q"'},
    ]


def test_settings_hold_for_their_query_only(server):
    status, _, body = call(server, {"query": "SELECT getSetting('max_block_size')", "max_block_size": "777"})
    assert (status, body) == (200, b"777\n")
    status, _, body = call(server, {"query": "SELECT getSetting('max_block_size')"})
    assert status == 200 and body != b"777\n"
    status, headers, body = call(server, {"query": "SELECT 1", "no_such_setting_here": "1"})
    assert status != 200
    assert b"no_such_setting_here" in body


def test_errors_answer_non_200_with_clickhouses_message_and_code(server):
    status, headers, body = call(server, {"query": "SELECT * FROM default.no_such_table"})
    assert status == 404
    assert headers["X-ClickHouse-Exception-Code"] == "60"
    assert b"UNKNOWN_TABLE" in body
    status, headers, body = call(server, {"query": "SELEC 1"})
    assert status == 400
    assert headers["X-ClickHouse-Exception-Code"] == "62"
    assert b"Syntax error" in body
    status, headers, body = call(server, {"query": "SELECT throwIf(1, 'boom')"})
    assert status == 500
    assert b"boom" in body


def test_concurrent_inserts_are_all_kept(server):
    db = f"conc_{RUN}"
    assert call(server, {"query": f"CREATE DATABASE {db}"})[0] == 200
    ddl = "CREATE TABLE t (n UInt64) ENGINE = MergeTree ORDER BY n"
    assert call(server, {"database": db, "query": ddl})[0] == 200
    failures = []

    def send(k):
        rows = "".join(f"{k * 1000 + i}\n" for i in range(1000)).encode()
        status, _, body = call(server, {"database": db, "query": "INSERT INTO t FORMAT TabSeparated"}, rows)
        if status != 200:
            failures.append(body)

    threads = [threading.Thread(target=send, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    status, _, body = call(server, {"database": db, "query": "SELECT count(), uniqExact(n) FROM t"})
    assert (status, body) == (200, b"8000\t8000\n")

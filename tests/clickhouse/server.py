#!/usr/bin/env python3
"""A test server speaking the part of ClickHouse's HTTP interface that Spanlens uses, on chDB.

No current ClickHouse server can be installed on the machines Spanlens is tested on, but PyPI's
`chdb-core` embeds the real ClickHouse engine in process. This server puts that engine behind the
HTTP interface a ClickHouse server offers on port 8123, so the store's ClickHouse backend can be
tested unchanged against the real engine:

- `GET /` and `GET /ping` answer `Ok.`;
- the query comes in the `query` URL parameter, or as the request body when that is absent; with
  both, the body is the rest of the query, or, for `INSERT … FORMAT name`, the rows to insert
  (written to a file and read with `INSERT … FROM INFILE`, optionally compressed: the request's
  `Content-Encoding` of gzip, deflate, br, xz or zstd is passed on as the file's `COMPRESSION`);
- `database` names the default database and `default_format` the output format when the query
  names none (else `TabSeparated`, as ClickHouse's);
- any other URL parameter but `user`, `password` and `session_id` is a setting, applied to this
  query only;
- an error answers 500 (400 for a syntax error, 404 for an unknown table or database) with
  ClickHouse's own message as the body and its code in `X-ClickHouse-Exception-Code`.

It is a harness, not a server: one engine session serves one request at a time, there is no
authentication, and what ClickHouse does beyond this list (sessions, async inserts, progress
headers, compressed answers, replication) is not offered.

Usage: server.py PORT DATA_DIR (serves on 127.0.0.1 until killed; prints nothing but errors, and
with `SLOW_QUERY_MS=N` in the environment each statement that took N ms or more, with its time).
With `TLS_CERT_FILE` and `TLS_KEY_FILE` (PEM) it serves HTTPS instead, as ClickHouse's port 8443.
"""

import os
import re
import ssl
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from chdb import session

# Parameters that are not settings.
NOT_SETTINGS = {"query", "database", "default_format", "user", "password", "session_id"}
# `INSERT … FORMAT name` whose rows follow in the body.
INSERT_FORMAT = re.compile(
    r"^\s*INSERT\s+INTO\s+(?P<head>.*?)\s+FORMAT\s+(?P<format>\w+)\s*$",
    re.IGNORECASE | re.DOTALL,
)
# A query that names its output format.
HAS_FORMAT = re.compile(r"\bFORMAT\s+\w+\s*;?\s*$", re.IGNORECASE)
SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Request encodings ClickHouse accepts, as `FROM INFILE … COMPRESSION` names them.
COMPRESSION = {"gzip": "gzip", "deflate": "deflate", "br": "br", "xz": "xz", "zstd": "zstd"}
# Status codes ClickHouse gives some errors; 500 for the rest.
STATUS = {62: 400, 60: 404, 81: 404}
CONTENT_TYPES = {
    "TabSeparated": "text/tab-separated-values; charset=UTF-8",
    "TSV": "text/tab-separated-values; charset=UTF-8",
    "JSON": "application/json; charset=UTF-8",
    "JSONEachRow": "application/x-ndjson; charset=UTF-8",
    "JSONCompact": "application/json; charset=UTF-8",
}
ERROR_CODE = re.compile(r"Code:\s*(\d+)")
SLOW_QUERY_MS = float(os.environ.get("SLOW_QUERY_MS") or "inf")


class Engine:
    """One chDB session, used by one request at a time."""

    def __init__(self, data_dir):
        self.session = session.Session(data_dir)
        self.lock = threading.Lock()

    def run(self, sql, fmt, database, settings):
        """Runs one statement with `settings` in force for it alone; returns its output."""
        with self.lock:
            self.session.query(f"USE {quote_ident(database)}")
            for name, value in settings:
                self.session.query(f"SET {name} = {quote_value(value)}")
            began = time.monotonic()
            try:
                return self.session.query(sql, fmt).bytes()
            finally:
                took = (time.monotonic() - began) * 1000
                if took >= SLOW_QUERY_MS:
                    print(f"{took:.0f} ms: {' '.join(sql.split())[:400]}", file=sys.stderr, flush=True)
                for name, _ in settings:
                    self.session.query(f"SET {name} = DEFAULT")


def quote_ident(name):
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def quote_value(value):
    """A setting's value: numbers as they are, anything else as a string literal."""
    if re.fullmatch(r"-?\d+(\.\d+)?", value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class ClickHouseError(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    engine = None
    # Headers and body go out in two writes: with Nagle's algorithm the body waits for the
    # client's delayed acknowledgement of the headers, some 40 ms per request.
    disable_nagle_algorithm = True

    def log_message(self, *args):  # quiet: errors only
        pass

    def do_GET(self):
        url = urlsplit(self.path)
        if url.path in ("/", "/ping") and not url.query:
            self.reply(200, b"Ok.\n", "text/plain; charset=UTF-8")
            return
        self.handle_query(b"")

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.handle_query(body)

    def handle_query(self, body):
        url = urlsplit(self.path)
        params = parse_qsl(url.query, keep_blank_values=True)
        given = dict(params)
        database = given.get("database") or self.headers.get("X-ClickHouse-Database") or "default"
        fmt = given.get("default_format") or self.headers.get("X-ClickHouse-Format") or "TabSeparated"
        settings = []
        for name, value in params:
            if name in NOT_SETTINGS:
                continue
            if not SETTING_NAME.match(name):
                self.fail(ClickHouseError(115, f"Code: 115. DB::Exception: Unknown setting '{name}'. (UNKNOWN_SETTING)"))
                return
            settings.append((name, value))
        try:
            output = self.run(given.get("query"), body, fmt, database, settings)
        except ClickHouseError as e:
            self.fail(e)
            return
        except Exception as e:  # chDB's own errors carry ClickHouse's message and code
            text = str(e).strip()
            m = ERROR_CODE.search(text)
            self.fail(ClickHouseError(int(m.group(1)) if m else 1000, text))
            return
        self.reply(200, output, CONTENT_TYPES.get(fmt, "text/plain; charset=UTF-8"), fmt)

    def run(self, query, body, fmt, database, settings):
        if query is None:
            if not body.strip():
                raise ClickHouseError(62, "Code: 62. DB::Exception: Empty query. (SYNTAX_ERROR)")
            return self.engine.run(body.decode("utf-8", "replace"), fmt, database, settings)
        insert = INSERT_FORMAT.match(query)
        if insert and body:
            return self.insert(insert, body, database, settings)
        if self.headers.get("Content-Encoding"):
            raise ClickHouseError(
                1000, "Code: 1000. DB::Exception: this test server reads compressed bodies of inserts only"
            )
        sql = query + ("\n" + body.decode("utf-8", "replace") if body else "")
        return self.engine.run(sql, fmt, database, settings)

    def insert(self, insert, body, database, settings):
        """Rows in the body: written to a file and read by `INSERT … FROM INFILE`."""
        encoding = (self.headers.get("Content-Encoding") or "").strip().lower()
        compression = ""
        if encoding:
            if encoding not in COMPRESSION:
                raise ClickHouseError(
                    1000, f"Code: 1000. DB::Exception: Unknown Content-Encoding '{encoding}'"
                )
            compression = f" COMPRESSION '{COMPRESSION[encoding]}'"
        fd, path = tempfile.mkstemp(prefix="insert-", dir=self.server.spool)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(body)
            sql = (
                f"INSERT INTO {insert.group('head')} FROM INFILE '{path}'{compression} "
                f"FORMAT {insert.group('format')}"
            )
            return self.engine.run(sql, "TabSeparated", database, settings)
        finally:
            os.unlink(path)

    def fail(self, error):
        status = STATUS.get(error.code, 500)
        message = str(error)
        if not message.endswith("\n"):
            message += "\n"
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=UTF-8")
        self.send_header("X-ClickHouse-Exception-Code", str(error.code))
        data = message.encode()
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def reply(self, status, data, content_type, fmt=None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if fmt:
            self.send_header("X-ClickHouse-Format", fmt)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A client that hung up (a test's timeout, a killed collector) is not the server's error.
        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            return
        super().handle_error(request, client_address)


def main():
    if len(sys.argv) != 3:
        print("usage: server.py PORT DATA_DIR", file=sys.stderr)
        sys.exit(2)
    port, data_dir = int(sys.argv[1]), sys.argv[2]
    os.makedirs(data_dir, exist_ok=True)
    spool = os.path.join(data_dir, "spool")
    os.makedirs(spool, exist_ok=True)
    Handler.engine = Engine(os.path.join(data_dir, "chdb"))
    server = Server(("127.0.0.1", port), Handler)
    server.spool = spool
    cert, key = os.environ.get("TLS_CERT_FILE"), os.environ.get("TLS_KEY_FILE")
    if cert and key:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(cert, key)
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()

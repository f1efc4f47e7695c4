"""Shared pieces of the end-to-end tests: the `spanlens serve` process, a small JSON API client,
and an independent price calculator that reads `prices.toml` itself (it does not ask the server).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.parse
import urllib.request
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PRICES_TOML = ROOT / "crates" / "spanlens-core" / "data" / "prices.toml"


def spanlens_bin() -> Path:
    """The `spanlens` binary under test (`SPANLENS_BIN`, default `target/debug/spanlens`)."""
    p = Path(os.environ.get("SPANLENS_BIN", ROOT / "target" / "debug" / "spanlens"))
    return p if p.is_absolute() else ROOT / p


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------------
# HTTP


def http(method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None,
         timeout: float = 30) -> tuple[int, dict[str, str], bytes]:
    """One request; returns (status, headers, body) for any status, raising only on I/O errors."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


class SpanlensServer:
    """One `spanlens serve` process on free loopback ports with its own data directory."""

    def __init__(self, data_dir: Path, log_path: Path, extra_args: list[str] | None = None):
        self.data_dir = Path(data_dir)
        self.log_path = Path(log_path)
        self.extra_args = list(extra_args or [])
        self.proc: subprocess.Popen[bytes] | None = None
        self.http_port = 0
        self.grpc_port = 0

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> "SpanlensServer":
        binary = spanlens_bin()
        assert binary.exists(), f"{binary} is missing: build it with `cargo build -p spanlens-cli`"
        last_log = ""
        for _attempt in range(3):  # a free port can be taken between the probe and the bind
            self.http_port, self.grpc_port = free_port(), free_port()
            if self.http_port == self.grpc_port:
                continue
            log = open(self.log_path, "ab")
            self.proc = subprocess.Popen(
                [str(binary), "serve", "--data-dir", str(self.data_dir),
                 "--http", f"127.0.0.1:{self.http_port}", "--grpc", f"127.0.0.1:{self.grpc_port}",
                 *self.extra_args],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
            log.close()
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                try:
                    status, _, body = http("GET", self.url("/healthz"), timeout=2)
                    if status == 200:
                        return self
                except OSError:
                    pass
                time.sleep(0.05)
            last_log = self.log()
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"spanlens serve did not answer /healthz in {timeout}s:\n{last_log}")
            if "cannot listen" not in last_log:
                break
        raise AssertionError(f"spanlens serve exited with {self.proc.returncode if self.proc else '?'}:\n{last_log}")

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, then the exit code (the process is killed if it does not stop in time)."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"spanlens serve ignored SIGTERM for {timeout}s:\n{self.log()}")

    def kill9(self) -> None:
        """SIGKILL: no chance to flush anything."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    # -- addresses -------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    @property
    def grpc_endpoint(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    # -- JSON API --------------------------------------------------------------------------------

    def get_json(self, path: str, **params: Any) -> Any:
        q = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None}, doseq=True)
        status, _, body = http("GET", self.url(path + (f"?{q}" if q else "")))
        assert status == 200, f"GET {path}?{q} -> {status}: {body[:500]!r}"
        return json.loads(body)

    def trace(self, trace_id: str, project: str | None = None) -> dict[str, Any]:
        """`GET /api/v1/traces/{trace_id}` (asserting it exists)."""
        return self.get_json(f"/api/v1/traces/{trace_id}", project=project)

    def trace_status(self, trace_id: str) -> int:
        return http("GET", self.url(f"/api/v1/traces/{trace_id}"))[0]

    def traces(self, **filters: Any) -> list[dict[str, Any]]:
        return self.get_json("/api/v1/traces", **filters)["items"]

    def span_count(self, project: str = "default") -> int:
        return int(self.get_json("/api/v1/stats", project=project)["span_count"])


# ---------------------------------------------------------------------------------------------
# Prices: an independent reading of the catalog


def _load_catalog() -> list[dict[str, Any]]:
    with open(PRICES_TOML, "rb") as f:
        return tomllib.load(f)["model"]


CATALOG = _load_catalog()


def price_entry(model: str) -> dict[str, Any]:
    """The one catalog entry whose `match` regex matches the whole (lowercased) model name."""
    name = model.strip().lower()
    hits = []
    for e in CATALOG:
        try:
            if re.fullmatch(e["match"], name):
                hits.append(e)
        except re.error:
            continue  # a Rust-only regex construct: not one of the models these tests use
    assert len(hits) == 1, f"{model!r} matches {len(hits)} catalog entries: {[h['id'] for h in hits]}"
    return hits[0]


def expected_cost_usd(model: str, usage: dict[str, int]) -> Decimal:
    """The cost of one call with CANONICAL usage (input includes cache, output includes reasoning),
    following the rules written at the top of prices.toml, in exact decimal arithmetic."""
    e = price_entry(model)
    fields = ("input", "output", "cache_read", "cache_write", "cache_write_1h", "reasoning")
    rates = {k: Decimal(str(e[k])) for k in fields if k in e}
    inp = usage.get("input_tokens", 0)
    for tier in sorted(e.get("tiers", []), key=lambda t: t["above_input_tokens"]):
        if inp > tier["above_input_tokens"]:
            rates.update({k: Decimal(str(tier[k])) for k in fields if k in tier})
    cache_read = usage.get("cache_read_tokens", 0)
    cache_write = usage.get("cache_write_tokens", 0)
    # Anthropic one-hour cache writes have their own price (`cache_write_1h`).
    write_1h = usage.get("cache_write_1h_tokens", 0) if "cache_write_1h" in rates else 0
    out = usage.get("output_tokens", 0)
    reasoning = usage.get("reasoning_tokens", 0)
    total = (inp - cache_read - cache_write) * rates["input"]
    total += cache_read * rates.get("cache_read", rates["input"])
    total += (cache_write - write_1h) * rates.get("cache_write", rates["input"])
    total += write_1h * rates.get("cache_write_1h", rates["input"])
    if "reasoning" in rates:
        total += (out - reasoning) * rates["output"] + reasoning * rates["reasoning"]
    else:
        total += out * rates["output"]
    return total / Decimal(1_000_000)


def openai_chat_canonical(raw: dict[str, Any]) -> dict[str, int]:
    """Canonical usage from a Chat Completions usage object (prompt tokens already include cache)."""
    cached = (raw.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    reasoning = (raw.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0
    return {
        "input_tokens": raw["prompt_tokens"],
        "output_tokens": raw["completion_tokens"],
        "cache_read_tokens": cached,
        "cache_write_tokens": 0,
        "reasoning_tokens": reasoning,
        "total_tokens": raw["prompt_tokens"] + raw["completion_tokens"],
    }


def openai_responses_canonical(raw: dict[str, Any]) -> dict[str, int]:
    """Canonical usage from a Responses API usage object (input tokens already include cache)."""
    details = raw.get("input_tokens_details") or {}
    return {
        "input_tokens": raw["input_tokens"],
        "output_tokens": raw["output_tokens"],
        "cache_read_tokens": details.get("cached_tokens") or 0,
        "cache_write_tokens": details.get("cache_write_tokens") or 0,
        "reasoning_tokens": (raw.get("output_tokens_details") or {}).get("reasoning_tokens") or 0,
        "total_tokens": raw["input_tokens"] + raw["output_tokens"],
    }


USAGE_KEYS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
              "reasoning_tokens", "total_tokens")


def usage_of(span: dict[str, Any]) -> dict[str, int]:
    """The six canonical counts of a span (missing usage reads as an empty dict)."""
    u = span.get("usage") or {}
    return {k: u.get(k) for k in USAGE_KEYS if k in u}


def run_client(script: str, spanlens: "SpanlensServer", mock_base: str, python: str | None = None,
               timeout: float = 180, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Runs `tests/e2e/clients/<script>` in its own process (under `python`, default this one) and
    returns what it reported on its `E2E_RESULT` line. Each library gets a fresh process, so one
    library's global OpenTelemetry set-up cannot leak into another's."""
    clients = Path(__file__).resolve().parent / "clients"
    env = dict(os.environ, E2E_SPANLENS_URL=spanlens.base_url, E2E_SPANLENS_GRPC=spanlens.grpc_endpoint,
               E2E_MOCK_URL=mock_base, PYTHONDONTWRITEBYTECODE="1", **(env or {}))
    proc = subprocess.run([python or sys.executable, str(clients / script)], cwd=clients, env=env,
                          capture_output=True, text=True, timeout=timeout)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("E2E_RESULT ")]
    assert proc.returncode == 0 and lines, (
        f"{script} exited with {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1].removeprefix("E2E_RESULT "))


def wait_for_spans(spanlens: "SpanlensServer", trace_id: str, count: int, timeout: float = 20) -> dict[str, Any]:
    """The trace once it holds `count` spans (exporters may deliver in several requests)."""
    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        if spanlens.trace_status(trace_id) == 200:
            body = spanlens.trace(trace_id)
            if len(body["spans"]) >= count:
                return body
        time.sleep(0.1)
    raise AssertionError(f"trace {trace_id} has {len(body.get('spans', []))} spans, not {count}, after {timeout}s")


def assert_cost(span: dict[str, Any], model: str, usage: dict[str, int]) -> None:
    """The span's cost equals the catalog price of `usage` for `model`, to 1e-9 USD."""
    want = expected_cost_usd(model, usage)
    cost = span.get("cost")
    assert cost is not None, f"span {span['name']!r} has no cost (unpriced_reason={span.get('unpriced_reason')!r})"
    got = Decimal(str(cost["total_usd"]))
    assert abs(got - want) <= Decimal("1e-9"), f"{span['name']!r}: total_usd {got} != {want} (catalog)"
    assert cost.get("pricing_id") == price_entry(model)["id"], cost


# ---------------------------------------------------------------------------------------------
# Trees


def by_id(spans: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {s["span_id"]: s for s in spans}


def ancestors(span: dict[str, Any], index: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Parent, grandparent, … up to the root (stops at a parent that is not in the trace)."""
    out, seen = [], set()
    cur = span
    while cur.get("parent_span_id") and cur["parent_span_id"] in index and cur["span_id"] not in seen:
        seen.add(cur["span_id"])
        cur = index[cur["parent_span_id"]]
        out.append(cur)
    return out


def roots(spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [s for s in spans if not s.get("parent_span_id")]

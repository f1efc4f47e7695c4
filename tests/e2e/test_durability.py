"""Durability: every span the server acknowledged survives `kill -9` and a restart on the same
data directory; and a SIGTERM stop keeps everything too."""

from __future__ import annotations

import base64
import copy
import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from helpers import http

SPANS_PER_TRACE = 5


def _kv(key, value):
    return {"key": key, "value": {"intValue": str(value)} if isinstance(value, int) else {"stringValue": value}}


def trace_request(n: int) -> tuple[str, dict]:
    """One trace: an agent span and four LLM calls with usage (distinct numbers per trace)."""
    trace_id = uuid.uuid4().hex
    t0 = time.time_ns() - 60_000_000_000
    agent_id = uuid.uuid4().hex[:16]
    spans = [{
        "traceId": trace_id, "spanId": agent_id, "name": f"invoke_agent durable_{n}", "kind": 1,
        "startTimeUnixNano": str(t0), "endTimeUnixNano": str(t0 + 900_000_000),
        "attributes": [_kv("gen_ai.operation.name", "invoke_agent"), _kv("gen_ai.agent.name", f"durable_{n}")],
    }]
    for i in range(SPANS_PER_TRACE - 1):
        spans.append({
            "traceId": trace_id, "spanId": uuid.uuid4().hex[:16], "parentSpanId": agent_id,
            "name": "chat gpt-4o-mini", "kind": 3,
            "startTimeUnixNano": str(t0 + (i * 200 + 10) * 1_000_000),
            "endTimeUnixNano": str(t0 + (i * 200 + 190) * 1_000_000),
            "attributes": [
                _kv("gen_ai.operation.name", "chat"), _kv("gen_ai.provider.name", "openai"),
                _kv("gen_ai.request.model", "gpt-4o-mini"),
                _kv("gen_ai.usage.input_tokens", 1000 + n * 10 + i),
                _kv("gen_ai.usage.cache_read.input_tokens", 512),
                _kv("gen_ai.usage.output_tokens", 100 + i),
            ],
        })
    return trace_id, {"resourceSpans": [{
        "resource": {"attributes": [_kv("service.name", "e2e-durability")]},
        "scopeSpans": [{"scope": {"name": "e2e.durability"}, "spans": spans}],
    }]}


def encoded(n: int) -> tuple[str, bytes, str]:
    """Trace `n` as a request body: (trace id, bytes, content type); even: protobuf, odd: JSON."""
    trace_id, body = trace_request(n)
    if n % 2 == 0:
        return trace_id, to_protobuf(body), "application/x-protobuf"
    return trace_id, json.dumps(body).encode(), "application/json"


def to_protobuf(body: dict) -> bytes:
    """OTLP/JSON → protobuf. OTLP/JSON writes ids as hex where the generic protobuf JSON mapping
    expects base64, so the ids are converted first."""
    body = copy.deepcopy(body)
    for rs in body["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for span in ss["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if span.get(key):
                        span[key] = base64.b64encode(bytes.fromhex(span[key])).decode()
    return json_format.ParseDict(body, ExportTraceServiceRequest()).SerializeToString()


def send(server, raw: bytes, ctype: str) -> None:
    """Posts one request and checks it was acknowledged in full (no partial success)."""
    status, headers, resp = http("POST", server.url("/v1/traces"), raw, {"Content-Type": ctype})
    assert status == 200, (status, resp[:300])
    if ctype == "application/json":
        assert json.loads(resp) == {}, resp
    else:
        answer = ExportTraceServiceResponse.FromString(resp)
        assert not answer.HasField("partial_success"), answer


def post(server, n: int) -> str:
    """Sends a new trace `n`; returns its id once the server acknowledged it."""
    trace_id, raw, ctype = encoded(n)
    send(server, raw, ctype)
    return trace_id


def test_acknowledged_spans_survive_kill_9(new_server, tmp_path):
    data = tmp_path / "data"
    first = new_server(data, "before-kill")
    # Concurrent senders, so acknowledgements come from batched (group) commits.
    with ThreadPoolExecutor(max_workers=6) as pool:
        acked = list(pool.map(lambda n: post(first, n), range(48)))
    reference = acked[7]
    snapshot = first.trace(reference)
    # One more request acknowledged right before the kill: no time for anything to settle.
    acked.append(post(first, 48))
    first.kill9()
    assert first.proc.returncode == -9

    second = new_server(data, "after-kill")
    assert second.span_count() == len(acked) * SPANS_PER_TRACE
    listed = set()
    cursor = None
    while True:
        page = second.get_json("/api/v1/traces", limit=100, cursor=cursor)
        listed |= {t["trace_id"] for t in page["items"]}
        cursor = page.get("next_cursor")
        if not cursor:
            break
    assert listed == set(acked)
    assert second.trace(reference) == snapshot
    last = second.trace(acked[-1])
    assert len(last["spans"]) == SPANS_PER_TRACE
    assert sorted(s["usage"]["input_tokens"] for s in last["spans"] if s["kind"] == "llm") == \
        [1000 + 48 * 10 + i for i in range(SPANS_PER_TRACE - 1)]
    assert second.stop() == 0


def test_sigterm_keeps_everything_and_restart_serves_it(new_server, tmp_path):
    data = tmp_path / "data"
    first = new_server(data, "before-term")
    bodies = [encoded(n) for n in range(6)]
    for _, raw, ctype in bodies:
        send(first, raw, ctype)
    acked = [trace_id for trace_id, _, _ in bodies]
    assert first.stop() == 0
    assert "INFO stopped" in first.log()
    second = new_server(data, "after-term")
    assert second.span_count() == len(acked) * SPANS_PER_TRACE
    for trace_id in acked:
        assert second.trace_status(trace_id) == 200
    # Idempotence: the same spans sent again (protobuf and JSON) are stored once.
    before = second.trace(acked[1])
    for _, raw, ctype in bodies[:2]:
        send(second, raw, ctype)
    assert second.span_count() == len(acked) * SPANS_PER_TRACE
    assert second.trace(acked[1])["spans"] == before["spans"]
    assert second.stop() == 0

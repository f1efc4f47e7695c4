"""OTLP/HTTP with JSON bodies (plain and gzip-compressed), the spanlens-core fixtures on every ingest
path, and the real OTLP exporters: `opentelemetry-exporter-otlp-proto-grpc` (plain and gzip) and
`opentelemetry-exporter-otlp-proto-http` with gzip."""

from __future__ import annotations

import gzip
import json
import time
import uuid

import grpc
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http import Compression as HttpCompression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from helpers import ROOT, ancestors, assert_cost, by_id, http, roots, usage_of

FIXTURE = ROOT / "crates" / "spanlens-core" / "tests" / "fixtures"

# One LLM call's usage in OTel GenAI terms: input INCLUDES the cache read, output INCLUDES reasoning.
GENAI_USAGE = {"input_tokens": 12_400, "cache_read_tokens": 8_192, "output_tokens": 940,
               "reasoning_tokens": 512}


def _attr(key: str, value) -> dict:
    """One OTLP/JSON KeyValue (ints as strings, as protobuf JSON mapping wants for int64)."""
    if isinstance(value, bool):
        v = {"boolValue": value}
    elif isinstance(value, int):
        v = {"intValue": str(value)}
    elif isinstance(value, float):
        v = {"doubleValue": value}
    elif isinstance(value, list):
        v = {"arrayValue": {"values": [_attr("", x)["value"] for x in value]}}
    else:
        v = {"stringValue": str(value)}
    return {"key": key, "value": v}


def genai_request(service: str) -> tuple[str, dict, dict[str, str]]:
    """An ExportTraceServiceRequest (OTLP/JSON) of one agent run with GenAI attributes:
    invoke_agent → chat (LLM, streamed) and execute_tool. Returns (trace id, body, span ids)."""
    trace_id = uuid.uuid4().hex
    ids = {n: uuid.uuid4().hex[:16] for n in ("agent", "chat", "tool")}
    t0 = time.time_ns() - 5_000_000_000
    ms = 1_000_000

    def span(name, sid, parent, start, end, kind, attrs, events=()):
        return {
            "traceId": trace_id, "spanId": ids[sid], "parentSpanId": ids[parent] if parent else "",
            "name": name, "kind": kind,
            "startTimeUnixNano": str(t0 + start * ms), "endTimeUnixNano": str(t0 + end * ms),
            "attributes": [_attr(k, v) for k, v in attrs.items()],
            "events": list(events), "status": {"code": 1},
        }

    u = GENAI_USAGE
    body = {"resourceSpans": [{
        "resource": {"attributes": [_attr("service.name", service), _attr("service.version", "2.1.0")]},
        "scopeSpans": [{
            "scope": {"name": "e2e.genai", "version": "0.1"},
            "spans": [
                span("invoke_agent travel_planner", "agent", None, 0, 2400, 1, {
                    "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "travel_planner",
                    "gen_ai.provider.name": "openai", "gen_ai.conversation.id": f"conv_{trace_id[:10]}",
                    "user.id": "u_e2e"}),
                span("chat gpt-4.1-mini", "chat", "agent", 100, 1900, 3, {
                    "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                    "gen_ai.request.model": "gpt-4.1-mini",
                    "gen_ai.response.model": "gpt-4.1-mini-2025-04-14",
                    "gen_ai.request.temperature": 0.2, "gen_ai.request.max_tokens": 2048,
                    "gen_ai.usage.input_tokens": u["input_tokens"],
                    "gen_ai.usage.cache_read.input_tokens": u["cache_read_tokens"],
                    "gen_ai.usage.output_tokens": u["output_tokens"],
                    "gen_ai.usage.reasoning.output_tokens": u["reasoning_tokens"],
                    "gen_ai.response.time_to_first_chunk": 0.345,
                    "gen_ai.response.finish_reasons": ["stop"]}),
                span("execute_tool get_weather", "tool", "agent", 1950, 2300, 1, {
                    "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "get_weather",
                    "gen_ai.tool.call.id": "call_e2e_1",
                    "gen_ai.tool.call.arguments": json.dumps({"city": "Lisbon"})}),
            ],
        }],
    }]}
    return trace_id, body, ids


def check_genai_trace(spanlens, trace_id: str, ids: dict[str, str], service: str) -> None:
    body = spanlens.trace(trace_id)
    spans = body["spans"]
    index = by_id(spans)
    assert set(index) == set(ids.values()), sorted((s["name"], s["span_id"]) for s in spans)
    agent, chat, tool = index[ids["agent"]], index[ids["chat"]], index[ids["tool"]]
    assert roots(spans) == [agent]
    assert (agent["kind"], chat["kind"], tool["kind"]) == ("agent", "llm", "tool")
    assert ancestors(chat, index) == [agent] and ancestors(tool, index) == [agent]
    assert agent["agent_name"] == "travel_planner"
    assert chat["provider"] == "openai"
    assert (chat["request_model"], chat["response_model"]) == ("gpt-4.1-mini", "gpt-4.1-mini-2025-04-14")
    want = dict(GENAI_USAGE, cache_write_tokens=0,
                total_tokens=GENAI_USAGE["input_tokens"] + GENAI_USAGE["output_tokens"])
    assert usage_of(chat) == want, chat.get("usage")
    assert_cost(chat, "gpt-4.1-mini-2025-04-14", want)
    assert chat["ttft_ms"] == pytest.approx(345.0, abs=1e-6)
    assert chat["finish_reasons"] == ["stop"]
    assert chat["model_parameters"].get("temperature") == 0.2
    assert tool["tool"]["name"] == "get_weather" and tool["tool"].get("call_id") == "call_e2e_1"
    assert all(s["service"] == service for s in spans)
    assert all(s["user_id"] == "u_e2e" for s in spans), [s.get("user_id") for s in spans]
    assert body["trace"]["session_id"] == f"conv_{trace_id[:10]}"


@pytest.mark.parametrize("compressed", [False, True], ids=["json", "json+gzip"])
def test_otlp_json(spanlens, compressed):
    service = f"e2e-otlp-json-{'gzip' if compressed else 'plain'}"
    trace_id, body, ids = genai_request(service)
    raw = json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if compressed:
        raw = gzip.compress(raw)
        headers["Content-Encoding"] = "gzip"
    status, resp_headers, resp = http("POST", spanlens.url("/v1/traces"), raw, headers)
    assert status == 200, resp
    assert resp_headers["content-type"].startswith("application/json")
    assert json.loads(resp) == {}, resp  # full success: no partialSuccess
    check_genai_trace(spanlens, trace_id, ids, service)


@pytest.mark.parametrize("fixture,path,gzipped,project", [
    ("otlp_genai", "/v1/traces", True, None),
    ("otlp_openinference", "/v1/traces", False, None),
    ("otlp_traceloop", "/v1/traces", True, None),
    ("otlp_langfuse", "/api/public/otel/v1/traces", False, None),
    # The golden file was made with "support-bot" as the default project: the header gives it.
    ("openai_agents_export", "/v1/traces/ingest", True, "support-bot"),
])
def test_repo_fixtures_land_as_their_golden_files(spanlens, fixture, path, gzipped, project):
    """spanlens-core's JSON fixtures, sent over HTTP (some gzip-compressed), come back from the API
    as their golden files say."""
    raw = (FIXTURE / f"{fixture}.json").read_bytes()
    headers = {"Content-Type": "application/json"}
    if project:
        headers["X-Project-Name"] = project
    if gzipped:
        raw = gzip.compress(raw)
        headers["Content-Encoding"] = "gzip"
    status, _, resp = http("POST", spanlens.url(path), raw, headers)
    assert status == 200, resp
    expected = [json.loads(line) for line in (FIXTURE / f"{fixture}.expected.jsonl").read_text().splitlines()
                if line.strip()]
    assert expected
    for trace_id, project in {(e["trace_id"], e.get("project")) for e in expected}:
        got = by_id(spanlens.trace(trace_id, project=project)["spans"])
        for e in (e for e in expected if e["trace_id"] == trace_id):
            s = got.get(e["span_id"])
            assert s is not None, f"span {e['name']} missing"
            for field in ("name", "kind", "parent_span_id", "start_time", "end_time", "status", "usage",
                          "request_model", "response_model", "provider", "ttft_ms", "user_id", "session_id"):
                assert s.get(field) == e.get(field), (e["name"], field, s.get(field), e.get(field))
            model = e.get("response_model") or e.get("request_model")
            if e.get("cost"):
                assert s.get("cost") == e["cost"], e["name"]
            elif e.get("usage") and model and e["kind"] == "llm":
                # The agents golden file is the normaliser's output before pricing; the server prices.
                assert_cost(s, model, usage_of(s))


def test_otlp_json_errors(spanlens):
    """Malformed JSON is refused with 400 and a message; an unknown content type with 415."""
    status, _, resp = http("POST", spanlens.url("/v1/traces"), b'{"resourceSpans": [',
                           {"Content-Type": "application/json"})
    assert status == 400, (status, resp)
    assert json.loads(resp).get("message"), resp
    status, _, _ = http("POST", spanlens.url("/v1/traces"), b"hello", {"Content-Type": "text/plain"})
    assert status == 415


def exporter(spanlens, transport: str):
    if transport == "grpc":
        return GrpcExporter(endpoint=spanlens.grpc_endpoint, insecure=True)
    if transport == "grpc+gzip":
        return GrpcExporter(endpoint=spanlens.grpc_endpoint, insecure=True, compression=grpc.Compression.Gzip)
    assert transport == "http-protobuf+gzip"
    return HttpExporter(endpoint=spanlens.url("/v1/traces"), compression=HttpCompression.Gzip)


@pytest.mark.parametrize("transport", ["grpc", "grpc+gzip", "http-protobuf+gzip"])
def test_otlp_exporters(spanlens, transport):
    """The real OTLP exporters (gRPC, also gzip-compressed, and HTTP protobuf with gzip): manual spans
    with GenAI attributes, via a batch processor."""
    service = f"e2e-otlp-{transport}"
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(exporter(spanlens, transport)))
    tracer = provider.get_tracer("e2e.grpc")
    usage = {"input_tokens": 3_000, "cache_read_tokens": 2_048, "output_tokens": 420, "reasoning_tokens": 0}
    try:
        with tracer.start_as_current_span("invoke_agent grpc_agent", kind=SpanKind.INTERNAL, attributes={
            "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "grpc_agent",
        }) as agent:
            trace_id = format(agent.get_span_context().trace_id, "032x")
            for i in range(3):
                with tracer.start_as_current_span("chat gpt-4o", kind=SpanKind.CLIENT, attributes={
                    "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                    "gen_ai.request.model": "gpt-4o", "gen_ai.response.model": "gpt-4o-2024-08-06",
                    "gen_ai.usage.input_tokens": usage["input_tokens"] + i,
                    "gen_ai.usage.cache_read.input_tokens": usage["cache_read_tokens"],
                    "gen_ai.usage.output_tokens": usage["output_tokens"],
                }):
                    pass
            with tracer.start_as_current_span("execute_tool flaky_tool", attributes={
                "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "flaky_tool",
            }) as tool:
                tool.set_status(Status(StatusCode.ERROR, "upstream timed out"))
                tool.record_exception(TimeoutError("upstream timed out"))
        assert provider.force_flush(30_000)
    finally:
        provider.shutdown()

    body = spanlens.trace(trace_id)
    spans = body["spans"]
    index = by_id(spans)
    assert len(spans) == 5
    [root] = roots(spans)
    assert root["kind"] == "agent" and root["name"] == "invoke_agent grpc_agent"
    chats = sorted((s for s in spans if s["kind"] == "llm"), key=lambda s: s["start_time"])
    assert len(chats) == 3
    for i, s in enumerate(chats):
        assert ancestors(s, index) == [root]
        want = {"input_tokens": usage["input_tokens"] + i, "output_tokens": usage["output_tokens"],
                "cache_read_tokens": usage["cache_read_tokens"], "cache_write_tokens": 0, "reasoning_tokens": 0,
                "total_tokens": usage["input_tokens"] + i + usage["output_tokens"]}
        assert usage_of(s) == want, s.get("usage")
        assert_cost(s, "gpt-4o-2024-08-06", want)
        assert s["service"] == service
    [tool] = [s for s in spans if s["kind"] == "tool"]
    assert tool["status"] == "error" and tool["status_message"] == "upstream timed out"
    assert tool.get("error_type") in ("TimeoutError", "builtins.TimeoutError"), tool.get("error_type")
    # The tool failed and the agent went on (its span is not in error): one error the trace
    # recovered from, not a failed trace.
    assert body["trace"]["error_count"] == 1
    assert body["trace"]["status"] != "error", body["trace"]

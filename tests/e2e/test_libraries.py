"""Real instrumentation libraries, each in its own process (tests/e2e/clients/), calling the mock
LLM and exporting to Spanlens: the OpenInference Anthropic instrumentation, OpenTelemetry's
`opentelemetry-instrumentation-openai-v2`, Traceloop's OpenLLMetry SDK (own venv: it pins another
OpenTelemetry), the Langfuse SDK's OpenAI integration, and the Anthropic SDK's built-in tracing;
one of them also through the OTLP/gRPC exporter (gzip).

Every script makes the same four calls under one application span: a plain call, a streamed call,
one the mock answers 429 and one it answers 500. Each test checks the tree, kinds, request and
response models, every token count against the mock's usage, the cost to the nano-dollar (priced
here from prices.toml, not by asking the server), messages, error status and time to first token.

Where a library does not send something (cache counts, reasoning tokens, streamed content, TTFT),
its `Lib` entry says so in `missing`, and the test checks that Spanlens shows exactly what the
library sent (the cost then follows the counts sent, which differs from the provider's bill).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from decimal import Decimal

import pytest

import mock_llm as mock
from helpers import (assert_cost, expected_cost_usd, openai_chat_canonical, roots, run_client, usage_of,
                     wait_for_spans)


@dataclass(frozen=True)
class Lib:
    script: str
    root: str
    root_kind: str
    provider: str
    request_model: str | None
    #: The venv to run in: None for this one, else an environment variable naming its python.
    python_env: str | None = None
    #: Counts the library does not send, per call ("plain"/"stream"), e.g. {"stream": {"reasoning_tokens"}}.
    missing: dict[str, set[str]] = field(default_factory=dict)
    #: Calls whose streamed output content the library does not record.
    no_output_messages: set[str] = field(default_factory=set)
    #: Whether the library reports a time to first token for the streamed call.
    ttft: bool = False
    #: The error type Spanlens shows for the 429 and the 500 (None: the library sends none).
    error_types: tuple[str | None, str | None] = (None, None)
    #: Whether the request model reaches Spanlens on answered calls (Langfuse keeps only one name).
    request_model_on_answers: bool = True
    #: Extra environment of the script (e.g. `E2E_OTLP=grpc`: export over OTLP/gRPC).
    env: dict[str, str] = field(default_factory=dict)


ANTHROPIC = "claude-sonnet-4-5"
OPENAI = "gpt-4o-mini"
OPENAI_COUNTS = {"cache_read_tokens", "reasoning_tokens"}

LIBS = {
    "anthropic-builtin": Lib(
        "anthropic_builtin.py", "e2e.anthropic-builtin", "span", "anthropic", ANTHROPIC,
        # anthropic 2.17's own tracing records streamed content only through `messages.stream()`.
        no_output_messages={"stream"}, ttft=True, error_types=("rate_limit_error", "api_error")),
    "openinference-anthropic": Lib(
        "openinference_anthropic.py", "e2e.openinference-anthropic", "span", "anthropic", ANTHROPIC,
        error_types=("anthropic.RateLimitError", "anthropic.InternalServerError")),
    # The same library exporting over OTLP/gRPC (gzip) instead of OTLP/HTTP.
    "openinference-anthropic-grpc": Lib(
        "openinference_anthropic.py", "e2e.openinference-anthropic", "span", "anthropic", ANTHROPIC,
        error_types=("anthropic.RateLimitError", "anthropic.InternalServerError"), env={"E2E_OTLP": "grpc"}),
    "otel-openai-v2": Lib(
        "otel_openai_v2.py", "e2e.otel-openai-v2", "span", "openai", OPENAI,
        # 2.4b0 sends input and output tokens only, and no TTFT.
        missing={"plain": OPENAI_COUNTS, "stream": OPENAI_COUNTS},
        error_types=("<class 'openai.RateLimitError'>", "<class 'openai.InternalServerError'>")),
    "traceloop": Lib(
        "traceloop_openai.py", "e2e.traceloop.workflow", "pipeline", "openai", OPENAI,
        python_env="E2E_TRACELOOP_PYTHON",
        # 0.62.4 reads reasoning tokens from a plain answer only, not from the streamed usage chunk.
        missing={"stream": {"reasoning_tokens"}},
        error_types=("openai.RateLimitError", "openai.InternalServerError")),
    "langfuse": Lib(
        "langfuse_openai.py", "e2e.langfuse", "span", None, OPENAI, ttft=True,
        request_model_on_answers=False),
}


@pytest.fixture(scope="module", params=sorted(LIBS))
def traced(request, spanlens, mock_llm):
    """Runs one library's script; returns (lib, result, trace body, served answers in call order)."""
    lib = LIBS[request.param]
    python = None
    if lib.python_env:
        python = os.environ.get(lib.python_env)
        assert python, f"{lib.python_env} is not set: run the tests through tests/e2e/run.sh"
    mock_llm.clear()
    result = run_client(lib.script, spanlens, f"http://127.0.0.1:{mock_llm.port}", python, env=lib.env)
    served = list(mock_llm.served)
    assert [s["scenario"] for s in served] == ["plain", "stream", "error_429", "error_500"], served
    assert result["plain"] == "Mock answer to: What is the capital of France?"
    assert result["streamed"] == "Mock answer to: And of Italy?"
    assert result["errors"] == ["RateLimitError", "InternalServerError"]
    body = wait_for_spans(spanlens, result["trace_id"], 5)
    return request.param, lib, body, served


def expected_usage(lib: Lib, call: str, answer: dict) -> dict[str, int]:
    """The canonical counts for one answered call, less what the library does not send."""
    if answer["path"] == "/v1/messages":
        want = mock.anthropic_canonical(mock.ANTHROPIC_USAGE[answer["scenario"]])
    else:
        want = openai_chat_canonical(answer["usage"])
    for key in lib.missing.get(call, ()):
        want[key] = 0
    return want


def test_tree_kinds_and_models(traced):
    name, lib, body, served = traced
    spans = body["spans"]
    assert len(spans) == 5, [(s["name"], s["kind"]) for s in spans]
    [root] = roots(spans)
    assert (root["name"], root["kind"]) == (lib.root, lib.root_kind)
    assert body["trace"]["root_span_id"] == root["span_id"]
    calls = sorted((s for s in spans if s is not root), key=lambda s: s["start_time"])
    for span, answer in zip(calls, served):
        assert span["parent_span_id"] == root["span_id"], (name, span["name"])
        assert span["kind"] == "llm", (name, span["name"], span["kind"])
        if lib.provider:
            assert span.get("provider") == lib.provider, (name, span.get("provider"))
        answered = answer["scenario"] in ("plain", "stream")
        if answered:
            assert span["response_model"] == answer["response_model"], (name, span.get("response_model"))
            want_request = lib.request_model if lib.request_model_on_answers else None
            assert span.get("request_model") == want_request, (name, span.get("request_model"))
        else:
            assert span.get("request_model") == lib.request_model, (name, span.get("request_model"))


def test_tokens_and_cost_to_the_nano_dollar(traced):
    name, lib, body, served = traced
    calls = _calls(body)
    total = Decimal(0)
    for call, span, answer in zip(("plain", "stream"), calls, served):
        want = expected_usage(lib, call, answer)
        assert usage_of(span) == want, (name, call, span.get("usage"), want)
        priced = dict(want)
        if answer["path"] == "/v1/messages":
            # The one-hour part of the cache writes, which costs more, must reach the price engine.
            priced["cache_write_1h_tokens"] = mock.ANTHROPIC_USAGE[answer["scenario"]]["write_1h"]
            assert (span["usage"].get("extra") or {}).get("cache_write_1h_tokens", 0) == \
                priced["cache_write_1h_tokens"], (name, call, span["usage"])
        assert_cost(span, answer["response_model"], priced)
        total += Decimal(str(span["cost"]["total_usd"]))
    # The trace adds up the answered calls; failed calls cost nothing.
    trace = body["trace"]
    assert abs(Decimal(str(trace["total_cost_usd"])) - total) <= Decimal("1e-9"), (name, trace)
    assert trace["input_tokens"] == sum(usage_of(s)["input_tokens"] for s in calls[:2]), name


def test_messages(traced):
    name, lib, body, _ = traced
    plain, stream, *_ = _calls(body)
    for call, span, question in (("plain", plain, "What is the capital of France?"),
                                 ("stream", stream, "And of Italy?")):
        inputs = span.get("input_messages") or []
        assert inputs and inputs[-1]["role"] == "user" and inputs[-1]["content"] == question, (name, call, inputs)
        outputs = span.get("output_messages") or []
        if call in lib.no_output_messages:
            assert outputs == [], (name, call, outputs)
            continue
        assert [(m["role"], m["content"]) for m in outputs] == [("assistant", f"Mock answer to: {question}")], \
            (name, call, outputs)
    system = [m for m in plain["input_messages"] if m["role"] == "system"]
    assert [m["content"] for m in system] == ["Answer in one sentence."], (name, plain["input_messages"])


def test_errors(traced):
    name, lib, body, _ = traced
    *_, rate_limited, broken = _calls(body)
    for span, want_type in zip((rate_limited, broken), lib.error_types):
        assert span["status"] == "error", (name, span["name"], span["status"])
        assert span.get("error_type") == want_type, (name, span.get("error_type"))
        assert span.get("usage") in (None, {}) or not any(usage_of(span).values()), (name, span.get("usage"))
        assert not span.get("output_messages"), (name, span.get("output_messages"))
    assert body["trace"]["status"] == "error" or body["trace"].get("error_count", 1) >= 1, body["trace"]


def test_time_to_first_token(traced):
    name, lib, body, _ = traced
    plain, stream, *_ = _calls(body)
    assert plain.get("ttft_ms") is None, (name, plain.get("ttft_ms"))
    if not lib.ttft:
        assert stream.get("ttft_ms") is None, (name, "this library reports no TTFT", stream.get("ttft_ms"))
        return
    assert stream.get("ttft_ms") is not None, (name, "no ttft_ms on the streamed call")
    assert stream["ttft_ms"] >= mock.FIRST_CHUNK_DELAY_S * 1000, (name, stream["ttft_ms"])
    assert stream["ttft_ms"] <= _duration_ms(stream), (name, stream["ttft_ms"])


def _calls(body):
    """The four call spans in call order: plain, stream, 429, 500."""
    spans = body["spans"]
    [root] = roots(spans)
    return sorted((s for s in spans if s is not root), key=lambda s: s["start_time"])


def _duration_ms(span) -> float:
    from test_openinference import _duration_ms as duration

    return duration(span)


def test_one_call_traced_twice_is_counted_once(spanlens, mock_llm):
    """Traceloop's Anthropic instrumentation and the Anthropic SDK's own tracing both record each
    call (same response id, model and usage, side by side under the workflow). Both spans are kept;
    the trace counts each call once, and the other span says which one it duplicates."""
    python = os.environ.get("E2E_TRACELOOP_PYTHON")
    assert python, "E2E_TRACELOOP_PYTHON is not set: run the tests through tests/e2e/run.sh"
    mock_llm.clear()
    result = run_client("traceloop_anthropic_twice.py", spanlens, f"http://127.0.0.1:{mock_llm.port}", python)
    served = list(mock_llm.served)
    assert [s["scenario"] for s in served] == ["plain", "stream"], served
    body = wait_for_spans(spanlens, result["trace_id"], 5)
    spans = body["spans"]
    llm = [s for s in spans if s["kind"] == "llm"]
    assert len(llm) == 4, [(s["name"], s["kind"]) for s in spans]
    by_call: dict[str, list] = {}
    for s in llm:
        by_call.setdefault(s["attributes"]["gen_ai.response.id"], []).append(s)
    assert sorted(by_call) == sorted(a["id"] for a in served), by_call.keys()
    counted = []
    for response_id, pair in by_call.items():
        assert sorted(s["attributes"]["otel.scope.name"] for s in pair) == [
            "com.anthropic.sdk.python", "opentelemetry.instrumentation.anthropic"], pair
        dupes = [s for s in pair if s.get("duplicate_of")]
        [kept] = [s for s in pair if not s.get("duplicate_of")]
        assert [d["duplicate_of"] for d in dupes] == [kept["span_id"]], (response_id, pair)
        counted.append(kept)
    # The trace counts each call once: the counted spans' tokens and cost, nothing from the copies.
    trace = body["trace"]
    assert trace["input_tokens"] == sum(s["usage"]["input_tokens"] for s in counted), trace
    assert trace["output_tokens"] == sum(s["usage"]["output_tokens"] for s in counted), trace
    want = sum(Decimal(str(s["cost"]["total_usd"])) for s in counted)
    assert abs(Decimal(str(trace["total_cost_usd"])) - want) <= Decimal("1e-9"), (trace, want)
    # Each call's input tokens are the mock's, once.
    assert trace["input_tokens"] == sum(
        mock.anthropic_canonical(mock.ANTHROPIC_USAGE[a["scenario"]])["input_tokens"] for a in served)
    # The counted record is the SDK's: only it splits the cache writes by TTL, so only it prices
    # the call exactly; the trace costs what the provider bills for the two calls.
    assert {s["attributes"]["otel.scope.name"] for s in counted} == {"com.anthropic.sdk.python"}, counted
    exact = Decimal(0)
    for a in served:
        u = mock.ANTHROPIC_USAGE[a["scenario"]]
        exact += expected_cost_usd(a["response_model"], {**mock.anthropic_canonical(u), "cache_write_1h_tokens": u["write_1h"]})
    assert abs(Decimal(str(trace["total_cost_usd"])) - exact) <= Decimal("1e-9"), (trace, exact)


def test_messages_sent_only_as_log_records_reach_their_spans(spanlens, mock_llm):
    """`opentelemetry-instrumentation-openai-v2` in event-only content mode: the messages travel
    as `gen_ai.client.inference.operation.details` log records over OTLP/HTTP `/v1/logs`, each
    sent before its span; Spanlens attaches them to their spans, which show the messages."""
    mock_llm.clear()
    result = run_client("otel_openai_v2_events.py", spanlens, f"http://127.0.0.1:{mock_llm.port}")
    assert [s["scenario"] for s in mock_llm.served] == ["plain", "stream"]
    body = wait_for_spans(spanlens, result["trace_id"], 3)
    [root] = roots(body["spans"])
    calls = sorted((s for s in body["spans"] if s is not root), key=lambda s: s["start_time"])
    for span, question in zip(calls, ("What is the capital of France?", "And of Italy?")):
        # Nothing in the span's own attributes carries a message: they came through the logs.
        assert not [k for k in span["attributes"] if k.startswith("gen_ai.") and "messages" in k], span["attributes"]
        assert [e["name"] for e in span.get("events", [])] == ["gen_ai.client.inference.operation.details"], \
            span.get("events")
        assert span["input_messages"][-1] == {"role": "user", "content": question}, span["input_messages"]
        assert [(m["role"], m["content"]) for m in span["output_messages"]] == [
            ("assistant", f"Mock answer to: {question}")], span["output_messages"]
    assert calls[0]["input_messages"][0] == {"role": "system", "content": "Answer in one sentence."}

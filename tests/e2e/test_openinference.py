"""The OpenTelemetry Python SDK + OTLP/HTTP exporter + OpenInference's OpenAI instrumentation, with
the real `openai` client calling the mock LLM: one plain and one streamed chat call inside an
application span."""

from __future__ import annotations

from decimal import Decimal

import pytest
from openai import InternalServerError, OpenAI, RateLimitError
from openinference.instrumentation.openai import OpenAIInstrumentor
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

import mock_llm as mock
from helpers import assert_cost, by_id, openai_chat_canonical, roots, usage_of

MODEL = "gpt-5-mini"


@pytest.fixture(scope="module")
def traced_calls(spanlens, mock_llm):
    """Runs the four calls (plain, streamed, a 429, a 500) under an `answer_question` span, flushes, and returns
    (trace_id, served answers, streamed text)."""
    provider = TracerProvider(resource=Resource.create({"service.name": "e2e-openinference"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=spanlens.url("/v1/traces"))))
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    mock_llm.clear()
    try:
        client = OpenAI(base_url=mock_llm.base_url, api_key="sk-e2e", max_retries=0)
        tracer = provider.get_tracer("e2e.app")
        with tracer.start_as_current_span("answer_question") as app_span:
            trace_id = format(app_span.get_span_context().trace_id, "032x")
            plain = client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "What is the capital of France?"}],
                temperature=0.3,
            )
            assert plain.choices[0].message.content == "Mock answer to: What is the capital of France?"
            stream = client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "And of Italy?"}],
                stream=True, stream_options={"include_usage": True},
            )
            text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
            # The mock answers these 429 and 500: the calls fail and their spans must say so.
            for marker, error in (("FAIL_429", RateLimitError), ("FAIL_500", InternalServerError)):
                with pytest.raises(error):
                    client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": marker}])
        assert provider.force_flush(30_000), "the OTLP exporter did not flush"
    finally:
        instrumentor.uninstrument()
        provider.shutdown()
    served = mock_llm.served_for("/v1/chat/completions")
    assert [s["scenario"] for s in served] == ["plain", "stream", "error_429", "error_500"]
    return trace_id, served, text


def test_openinference_openai_trace(spanlens, traced_calls):
    trace_id, served, text = traced_calls
    assert text == "Mock answer to: And of Italy?"
    body = spanlens.trace(trace_id)
    spans = body["spans"]
    index = by_id(spans)
    assert len(spans) == 5, [(s["name"], s["kind"]) for s in spans]

    # The application span is the root; both LLM calls hang directly under it.
    [root] = roots(spans)
    assert root["name"] == "answer_question"
    assert body["trace"]["trace_id"] == trace_id
    assert body["trace"]["root_span_id"] == root["span_id"]
    calls = sorted((s for s in spans if s is not root), key=lambda s: s["start_time"])
    llm, failed = calls[:2], calls[2:]
    assert len(llm) == 2 and len(failed) == 2
    # The failed calls: error spans with the client's exception type, no usage, no cost.
    for s, kind in zip(failed, ("RateLimitError", "InternalServerError")):
        assert s["kind"] == "llm" and s["status"] == "error", s
        assert kind in (s.get("error_type") or "") + (s.get("status_message") or ""), s
        assert not s.get("usage") and not s.get("cost"), s
    for s in llm:
        assert s["parent_span_id"] == root["span_id"], s
        assert s["trace_id"] == trace_id
        assert s["kind"] == "llm", s["kind"]
        assert s["provider"] == "openai", s.get("provider")
        assert s["status"] in ("ok", "unset"), s["status"]
        assert index[s["parent_span_id"]] is root

    plain, streamed = llm
    for span, answer in ((plain, served[0]), (streamed, served[1])):
        assert span["request_model"] == MODEL, span.get("request_model")
        assert span["response_model"] == mock.SNAPSHOTS[MODEL], span.get("response_model")
        # Tokens exactly as the mock reported them, cached and reasoning included.
        want = openai_chat_canonical(answer["usage"])
        assert usage_of(span) == want, (span["name"], span.get("usage"), answer["usage"])
        assert want["cache_read_tokens"] > 0 and want["reasoning_tokens"] > 0
        # Cost from the catalog, priced independently here.
        assert_cost(span, mock.SNAPSHOTS[MODEL], want)
        assert span["cost"]["source"] == "computed", span["cost"]

    # TTFT: only the streamed call has one, and it is at least the mock's delay before its first
    # chunk, and no longer than the span.
    assert "ttft_ms" in streamed, "no ttft_ms on the streamed call"
    assert streamed["ttft_ms"] >= mock.FIRST_CHUNK_DELAY_S * 1000, streamed["ttft_ms"]
    duration_ms = _duration_ms(streamed)
    assert streamed["ttft_ms"] <= duration_ms, (streamed["ttft_ms"], duration_ms)
    assert plain.get("ttft_ms") is None, plain.get("ttft_ms")
    assert plain["model_parameters"].get("temperature") == 0.3, plain.get("model_parameters")

    # The trace summary adds the two calls up.
    total_in = sum(usage_of(s)["input_tokens"] for s in llm)
    total_out = sum(usage_of(s)["output_tokens"] for s in llm)
    assert (body["trace"]["input_tokens"], body["trace"]["output_tokens"]) == (total_in, total_out)
    want_cost = sum(Decimal(str(s["cost"]["total_usd"])) for s in llm)
    assert abs(Decimal(str(body["trace"]["total_cost_usd"])) - want_cost) <= Decimal("1e-9")
    assert body["trace"]["span_count"] == 5
    # The script catches the 429 and the 500 inside its application span: the trace went on, so
    # it holds two errors it recovered from and did not fail.
    assert body["trace"]["error_count"] == 2 and body["trace"]["status"] != "error", body["trace"]

    # And the list API finds the trace by the model it used.
    ids = {t["trace_id"] for t in spanlens.traces(model=MODEL, limit=200)}
    assert trace_id in ids


def test_openinference_finish_reason(spanlens, traced_calls):
    """OpenInference reports why the model stopped in `llm.finish_reason` (a convention of
    openinference-semantic-conventions); it belongs in the canonical `finish_reasons`."""
    trace_id, served, _ = traced_calls
    llm = [s for s in spanlens.trace(trace_id)["spans"] if s["kind"] == "llm" and s["status"] != "error"]
    assert len(llm) == 2
    for s in llm:
        assert s["attributes"].get("llm.finish_reason") == "stop"  # what the instrumentation sent
        assert s.get("finish_reasons") == ["stop"], s.get("finish_reasons")


def _duration_ms(span):
    from datetime import datetime

    def ns(ts: str) -> int:
        # RFC 3339 with nanoseconds: split off the fraction, which datetime cannot hold.
        main, _, frac = ts.rstrip("Z").partition(".")
        secs = int(datetime.fromisoformat(main + "+00:00").timestamp())
        return secs * 1_000_000_000 + int((frac or "0").ljust(9, "0")[:9])

    return (ns(span["end_time"]) - ns(span["start_time"])) / 1e6

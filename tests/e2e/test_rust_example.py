"""The Rust SDK's `agent_pipeline` example exporting over OTLP/HTTP to the server.

The example also writes its own canonical spans to a JSONL file (`--jsonl`); what the server
stores after the OTLP round trip must agree with it span by span."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from helpers import ROOT, ancestors, assert_cost, by_id, roots, usage_of

SERVICE = "agent-pipeline-e2e"


def example_command() -> list[str]:
    """The prebuilt example (`SPANLENS_EXAMPLE_BIN`, default target/debug/examples/agent_pipeline),
    or `cargo run` when it has not been built."""
    p = Path(os.environ.get("SPANLENS_EXAMPLE_BIN", ROOT / "target" / "debug" / "examples" / "agent_pipeline"))
    p = p if p.is_absolute() else ROOT / p
    if p.exists():
        return [str(p)]
    return ["cargo", "run", "-q", "-p", "spanlens", "--features", "tokio", "--example", "agent_pipeline", "--"]


def test_agent_pipeline_example(spanlens, tmp_path):
    jsonl = tmp_path / "spans.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SPANLENS_"))}
    env.update(SPANLENS_ENDPOINT=spanlens.base_url, OTEL_SERVICE_NAME=SERVICE)
    run = subprocess.run(example_command() + ["--jsonl", str(jsonl)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    local = [json.loads(line) for line in jsonl.read_text().splitlines() if line.strip()]
    assert len(local) == 10
    [trace_id] = {s["trace_id"] for s in local}

    body = spanlens.trace(trace_id)
    spans = body["spans"]
    index = by_id(spans)
    assert len(spans) == 10, [(s["name"], s["kind"]) for s in spans]
    assert body["trace"]["span_count"] == 10

    [root] = roots(spans)
    assert (root["name"], root["kind"]) == ("support_pipeline", "pipeline")
    assert all(s["service"] == SERVICE for s in spans), {s.get("service") for s in spans}
    assert all(s["user_id"] == "cust_4711" and s["session_id"] == "conv_2025_11_22" for s in spans)

    agents = {s["name"]: s for s in spans if s["kind"] == "agent"}
    assert sorted(agents) == ["billing", "researcher", "triage"]
    assert all(a["parent_span_id"] == root["span_id"] for a in agents.values())

    llm = {s["request_model"]: s for s in spans if s["kind"] == "llm"}
    assert sorted(llm) == ["claude-sonnet-4-20250514", "gpt-4o", "gpt-4o-mini"]
    # Which agent made which call, and the cache reads the example's mock provider reports.
    for model, agent, provider, cached in (("gpt-4o-mini", "triage", "openai", 1024),
                                           ("claude-sonnet-4-20250514", "researcher", "anthropic", 2048),
                                           ("gpt-4o", "billing", "openai", 0)):
        s = llm[model]
        assert s["parent_span_id"] == agents[agent]["span_id"], (model, agent)
        assert s["provider"] == provider
        u = usage_of(s)
        assert u["cache_read_tokens"] == cached, (model, u)
        assert u["input_tokens"] > cached and u["output_tokens"] > 0
        assert u["total_tokens"] == u["input_tokens"] + u["output_tokens"]
        assert_cost(s, model, u)
        assert s["ttft_ms"] > 0

    tools = {s["name"]: s for s in spans if s["kind"] == "tool"}
    assert sorted(tools) == ["lookup_invoice", "search_docs"]
    invoice = tools["lookup_invoice"]
    assert ancestors(invoice, index)[0] is agents["billing"]
    assert [e["name"] for e in invoice["events"]].count("retry") == 2, invoice["events"]
    assert invoice["status"] != "error"
    assert [s["kind"] for s in spans].count("handoff") == 1

    # The trace summary is the sum of its LLM calls.
    assert body["trace"]["input_tokens"] == sum(usage_of(s)["input_tokens"] for s in llm.values())
    assert body["trace"]["total_cost_nano_usd"] == sum(
        round(s["cost"]["total_usd"] * 1e9) for s in llm.values())

    # What went over the wire is what the SDK recorded locally.
    server = by_id(spans)
    for want in local:
        got = server[want["span_id"]]
        for field in ("name", "kind", "parent_span_id", "start_time", "end_time", "status", "usage",
                      "provider", "request_model", "response_model", "user_id", "session_id", "tags"):
            assert got.get(field) == want.get(field), (want["name"], field, got.get(field), want.get(field))
        assert [e["name"] for e in got.get("events", [])] == [e["name"] for e in want.get("events", [])]
        if "ttft_ms" in want:
            assert abs(got["ttft_ms"] - want["ttft_ms"]) < 1e-6, want["name"]
        if want.get("cost"):
            assert got["cost"]["total_usd"] == want["cost"]["total_usd"], want["name"]

    # And the list API finds it by user and by model.
    assert trace_id in {t["trace_id"] for t in spanlens.traces(user="cust_4711", limit=200)}
    assert trace_id in {t["trace_id"] for t in spanlens.traces(model="claude-sonnet-4-20250514", limit=200)}

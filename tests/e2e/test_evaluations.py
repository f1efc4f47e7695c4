"""Evaluators on ingest: a rule evaluator and an LLM-as-judge that asks the mock OpenAI-compatible
server, whose verdicts come back as scores through the API and filter the trace list."""

from __future__ import annotations

import json
import time
import uuid

from helpers import http

JUDGE = "helpfulness"


def _attr(key: str, value: str) -> dict:
    return {"key": key, "value": {"stringValue": value}}


def test_rule_and_llm_judge_score_ingested_llm_spans(new_server, mock_llm, tmp_path):
    config = tmp_path / "evaluators.toml"
    config.write_text(
        "[[evaluator]]\n"
        'name = "valid json"\n'
        'rule = "valid_json"\n'
        "\n"
        "[[judge]]\n"
        f'name = "{JUDGE}"\n'
        f'endpoint = "{mock_llm.base_url}"\n'
        'model = "gpt-4o-mini"\n'
        'prompt = "Question: {input}\\nAnswer: {output}"\n'
    )
    server = new_server(tmp_path / "data", "evaluators", ["--evaluators", str(config)])
    trace_id, span_id = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    now = time.time_ns()
    body = {"resourceSpans": [{
        "resource": {"attributes": [_attr("service.name", "eval-e2e")]},
        "scopeSpans": [{"spans": [{
            "traceId": trace_id, "spanId": span_id, "name": "ChatCompletion",
            "startTimeUnixNano": str(now - 800_000_000), "endTimeUnixNano": str(now),
            "attributes": [
                _attr("openinference.span.kind", "LLM"),
                _attr("llm.model_name", "gpt-4o-mini"),
                _attr("input.value", "Which city is the capital of France? Answer as JSON."),
                _attr("output.value", '{"city": "Paris"}'),
            ],
        }]}],
    }]}
    status, _, answer = http("POST", server.url("/v1/traces"), json.dumps(body).encode(),
                             {"content-type": "application/json"})
    assert status == 200, answer

    deadline = time.monotonic() + 20
    scores: list[dict] = []
    while time.monotonic() < deadline:
        scores = server.get_json("/api/v1/scores", trace_id=trace_id)["items"]
        if len(scores) >= 2:
            break
        time.sleep(0.1)
    by_name = {s["name"]: s for s in scores}
    assert set(by_name) == {"valid json", JUDGE}, f"{scores}\n{server.log()[-2000:]}"
    assert by_name["valid json"]["value"] == 1.0 and by_name["valid json"]["source"] == "rule"
    judged = by_name[JUDGE]
    assert (judged["value"], judged["source"], judged["span_id"]) == (0.75, "llm", span_id)
    assert judged["comment"] == "mock judge: relevant and complete"

    # The judge was really asked, with the span's input and output in its prompt.
    asked = [s for s in mock_llm.served_for("/v1/chat/completions")
             if "Which city" in json.dumps(s.get("request", {}))]
    assert asked, "the mock never saw the judge's request"

    # Scores filter the trace list.
    assert [t["trace_id"] for t in server.traces(score_name=JUDGE, score_min=0.7)] == [trace_id]
    assert server.traces(score_name=JUDGE, score_min=0.9) == []

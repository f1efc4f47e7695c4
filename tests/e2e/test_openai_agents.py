"""The OpenAI Agents SDK (`openai-agents`): an `Agent` with one `@function_tool`, run with
`Runner.run_sync` against the mock LLM, its traces sent by the SDK's own `BackendSpanExporter`
to Spanlens' `POST /v1/traces/ingest`.

Both model APIs the SDK offers are exercised: the Responses API (its default) and Chat Completions
(`set_default_openai_api("chat_completions")`). Only the Chat Completions path exports the model
name on its LLM span (`generation` span data has `model`; `response` span data has only the
response id and usage), so only there can a cost be computed."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal

import pytest
from agents import (
    Agent,
    ModelSettings,
    RunConfig,
    Runner,
    function_tool,
    set_default_openai_api,
    set_default_openai_client,
    set_trace_processors,
    set_tracing_disabled,
)
from agents.tracing.processors import BackendSpanExporter, BatchTraceProcessor
from openai import AsyncOpenAI

import mock_llm as mock
from helpers import (
    ancestors,
    assert_cost,
    by_id,
    openai_chat_canonical,
    openai_responses_canonical,
    roots,
    usage_of,
)

MODEL = "gpt-4o-mini"
WEATHER = "Sunny, 21 C"


@function_tool
def get_weather(city: str) -> str:
    """Current weather in a city."""
    return f"{WEATHER} in {city}"


@function_tool(name_override="get_weather")
def broken_weather(city: str) -> str:
    """Current weather in a city (its service is down)."""
    raise ValueError(f"weather service down for {city}")


def run_agent(spanlens, mock_llm, api: str, streamed: bool = False, tool=get_weather,
              question: str = "What is the weather in Paris?", hex_id: str | None = None,
              trace_metadata: dict | None = None):
    """Runs the agent once with tracing sent to `spanlens`; returns (trace hex id, final output)."""
    exporter = BackendSpanExporter(api_key="sk-e2e", endpoint=spanlens.url("/v1/traces/ingest"),
                                   max_retries=1)
    processor = BatchTraceProcessor(exporter)
    set_tracing_disabled(False)
    set_trace_processors([processor])
    set_default_openai_client(AsyncOpenAI(base_url=mock_llm.base_url, api_key="sk-e2e", max_retries=0))
    set_default_openai_api(api)
    hex_id = hex_id or uuid.uuid4().hex
    agent = Agent(
        name="weather_agent",
        instructions="Answer weather questions with the get_weather tool.",
        model=MODEL,
        # include_usage: a streamed Chat Completions call reports usage only when asked to.
        model_settings=ModelSettings(temperature=0.1, include_usage=True),
        tools=[tool],
    )
    config = RunConfig(workflow_name=f"e2e weather ({api})", trace_id=f"trace_{hex_id}",
                       group_id=f"conv-{hex_id[:8]}", trace_metadata=trace_metadata)
    try:
        if streamed:
            import asyncio

            async def go():
                result = Runner.run_streamed(agent, question, run_config=config)
                async for _ in result.stream_events():
                    pass
                return result.final_output

            output = asyncio.run(go())
        else:
            output = Runner.run_sync(agent, question, run_config=config).final_output
    finally:
        processor.force_flush()
        processor.shutdown()
        set_trace_processors([])
    return hex_id, output


@pytest.mark.parametrize("api", ["responses", "chat_completions"])
def test_agent_with_tool_is_one_tree(spanlens, mock_llm, api):
    mock_llm.clear()
    trace_id, output = run_agent(spanlens, mock_llm, api)
    path = "/v1/responses" if api == "responses" else "/v1/chat/completions"
    served = mock_llm.served_for(path)
    # The tool turn, then the answer built from the tool's result.
    assert [s["scenario"] for s in served] == ["tool_call", "after_tool"], served
    assert output == f"The tool said: {WEATHER} in Paris"

    body = spanlens.trace(trace_id)
    spans = body["spans"]
    index = by_id(spans)
    assert all(s["trace_id"] == trace_id for s in spans)

    # ONE tree: a single root, the workflow, and every other span reaches it.
    [root] = roots(spans)
    assert root["name"] == f"e2e weather ({api})", root["name"]
    for s in spans:
        if s is not root:
            assert ancestors(s, index)[-1] is root, f"{s['name']} does not reach the root"

    agents = [s for s in spans if s["kind"] == "agent"]
    assert [a["name"] for a in agents] == ["weather_agent"], [(s["name"], s["kind"]) for s in spans]
    agent = agents[0]

    tools = [s for s in spans if s["kind"] == "tool"]
    assert len(tools) == 1, [(s["name"], s["kind"]) for s in spans]
    tool = tools[0]
    assert tool["name"] == "get_weather"
    assert agent in ancestors(tool, index)
    assert json.loads(tool["input"]["value"] if isinstance(tool["input"]["value"], str)
                      else json.dumps(tool["input"]["value"])) == mock.TOOL_ARGUMENTS
    assert f"{WEATHER} in Paris" in json.dumps(tool["output"])

    llm = sorted((s for s in spans if s["kind"] == "llm"), key=lambda s: s["start_time"])
    assert len(llm) == 2, [(s["name"], s["kind"]) for s in spans]
    canonical = openai_responses_canonical if api == "responses" else openai_chat_canonical
    for span, answer in zip(llm, served):
        assert agent in ancestors(span, index), f"llm span {span['name']} is not under the agent"
        want = canonical(answer["usage"])
        assert usage_of(span) == want, (span.get("usage"), answer["usage"])
        assert want["cache_read_tokens"] > 0
    # The tool ran between the two model calls.
    assert llm[0]["end_time"] <= tool["start_time"] <= tool["end_time"] <= llm[1]["start_time"]

    if api == "chat_completions":
        for span in llm:
            assert span["request_model"] == MODEL, span.get("request_model")
            assert_cost(span, MODEL, usage_of(span))
            assert span["cost"]["source"] == "computed"
        assert llm[0]["model_parameters"].get("temperature") == 0.1, llm[0].get("model_parameters")
    else:
        # The SDK's `response` span data carries no model name, so there is nothing to price it
        # with: the span must say so (`unpriced_reason`) rather than show a cost of $0.
        for span in llm:
            assert span.get("cost") is None, span.get("cost")
            assert span.get("unpriced_reason"), "an unpriced llm span with usage must say why"

    summary = body["trace"]
    # The Agents SDK's group id is the conversation: it becomes the session of every span.
    assert summary["session_id"] == f"conv-{trace_id[:8]}"
    assert all(s.get("session_id") == summary["session_id"] for s in spans)
    assert summary["span_count"] == len(spans)
    assert summary["input_tokens"] == sum(usage_of(s)["input_tokens"] for s in llm)
    assert summary["output_tokens"] == sum(usage_of(s)["output_tokens"] for s in llm)


@pytest.mark.parametrize("api", ["responses", "chat_completions"])
def test_agent_streamed_run(spanlens, mock_llm, api):
    """`Runner.run_streamed` over the streamed model APIs: same tree, same usage."""
    mock_llm.clear()
    trace_id, output = run_agent(spanlens, mock_llm, api, streamed=True)
    served = mock_llm.served_for("/v1/responses" if api == "responses" else "/v1/chat/completions")
    assert [(s["scenario"], s["stream"]) for s in served] == [("tool_call", True), ("after_tool", True)]
    assert output == f"The tool said: {WEATHER} in Paris"
    spans = spanlens.trace(trace_id)["spans"]
    index = by_id(spans)
    [agent] = [s for s in spans if s["kind"] == "agent"]
    llm = sorted((s for s in spans if s["kind"] == "llm"), key=lambda s: s["start_time"])
    [tool] = [s for s in spans if s["kind"] == "tool"]
    assert agent in ancestors(tool, index)
    assert all(agent in ancestors(s, index) for s in llm)
    canonical = openai_responses_canonical if api == "responses" else openai_chat_canonical
    assert all(s["usage"] is not None for s in served), "the client did not ask for usage in the stream"
    assert [usage_of(s) for s in llm] == [canonical(s["usage"]) for s in served]
    if api == "chat_completions":
        for span in llm:
            assert_cost(span, MODEL, usage_of(span))
        # openai-agents exports a streamed generation's output as `[{}]`. The first call's
        # answer (the tool call) is recovered from the second call's input; the last call's
        # text is nowhere in the export, and the span says so instead of showing an empty message.
        first, last = llm
        [call] = first["output_messages"]
        assert call["role"] == "assistant" and call["tool_calls"][0]["name"] == "get_weather", call
        assert json.loads(call["tool_calls"][0]["arguments"]) == mock.TOOL_ARGUMENTS
        assert first["attributes"]["spanlens.output_source"].startswith(
            "recovered from the input of the next model call"), first["attributes"]
        assert not last.get("output_messages"), last.get("output_messages")
        assert last["attributes"]["spanlens.output_source"].startswith("not exported"), last["attributes"]


def test_agent_tool_failure_is_an_error_span(spanlens, mock_llm):
    """A tool that raises: the SDK reports it to the model and marks its span; the span is an
    error, the run still finishes, so the trace did not fail: it recovered from one error."""
    mock_llm.clear()
    trace_id, output = run_agent(spanlens, mock_llm, "responses", tool=broken_weather)
    assert output.startswith("The tool said: An error occurred while running the tool")
    body = spanlens.trace(trace_id)
    [tool] = [s for s in body["spans"] if s["kind"] == "tool"]
    assert tool["name"] == "get_weather"
    assert tool["status"] == "error" and tool.get("status_message"), tool
    assert [s["name"] for s in body["spans"] if s["status"] == "error"] == ["get_weather"]
    assert (body["trace"]["status"], body["trace"]["error_count"]) == ("unset", 1), body["trace"]
    recovered = spanlens.traces(status="recovered", limit=200)
    assert trace_id in {t["trace_id"] for t in recovered}


@pytest.mark.parametrize("api", ["responses", "chat_completions"])
@pytest.mark.parametrize("marker,error", [("FAIL_429", "RateLimitError"), ("FAIL_500", "InternalServerError")])
def test_a_failed_model_call_is_an_error_span(spanlens, mock_llm, api, marker, error):
    """The mock answers the agent's first model call 429 or 500 (the client does not retry): the
    run raises, and the trace it exported shows the model call, and the agent, as errors; the
    trace failed (its agent run failed under a root without a status)."""
    from openai import APIStatusError

    mock_llm.clear()
    trace_id = uuid.uuid4().hex
    with pytest.raises(APIStatusError) as raised:
        run_agent(spanlens, mock_llm, api, question=f"{marker} What is the weather in Paris?", hex_id=trace_id)
    assert type(raised.value).__name__ == error
    body = spanlens.trace(trace_id)
    [call] = [s for s in body["spans"] if s["kind"] == "llm"]
    assert call["status"] == "error", call
    assert call.get("status_message") or call.get("error_type"), call
    assert not call.get("usage"), call.get("usage")
    [agent] = [s for s in body["spans"] if s["kind"] == "agent"]
    assert agent["status"] == "error", agent
    assert body["trace"]["status"] == "error" and body["trace"]["error_count"] >= 1, body["trace"]


def test_responses_calls_are_priced_with_the_model_the_trace_names(spanlens, mock_llm):
    """openai-agents exports no model on a Responses-API call, nor on its agent. A run that names
    its model in the trace metadata gets its calls priced with it, and each says where the model
    came from (no guess is made without it: see the unpriced case above)."""
    mock_llm.clear()
    trace_id, _ = run_agent(spanlens, mock_llm, "responses", trace_metadata={"model": MODEL})
    served = mock_llm.served_for("/v1/responses")
    body = spanlens.trace(trace_id)
    llm = sorted((s for s in body["spans"] if s["kind"] == "llm"), key=lambda s: s["start_time"])
    assert len(llm) == 2 == len(served)
    for span, answer in zip(llm, served):
        assert span["request_model"] == MODEL, span.get("request_model")
        assert span["attributes"]["spanlens.model_source"] == 'the trace metadata "model"'
        assert_cost(span, MODEL, openai_responses_canonical(answer["usage"]))
    want = sum(Decimal(str(s["cost"]["total_usd"])) for s in llm)
    assert abs(Decimal(str(body["trace"]["total_cost_usd"])) - want) <= Decimal("1e-9")
    assert body["trace"]["unpriced_span_count"] == 0, body["trace"]

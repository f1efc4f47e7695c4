"""The Anthropic Python SDK's own OpenTelemetry tracing (no instrumentation library), content on:
a plain and a streamed `messages.create`, a 429 and a 500, under one application span."""

from anthropic import Anthropic

from _common import (BROKEN, MOCK, PLAIN_QUESTION, RATE_LIMITED, STREAM_QUESTION, failed, otlp_provider,
                     report, trace_id_of)

MODEL = "claude-sonnet-4-5"

provider = otlp_provider("e2e-anthropic-builtin")
client = Anthropic(base_url=MOCK, api_key="sk-ant-e2e", max_retries=0,
                   open_telemetry={"tracer_provider": provider, "traces": {"content_mode": "content"}})
with provider.get_tracer("e2e.app").start_as_current_span("e2e.anthropic-builtin") as root:
    plain = client.messages.create(model=MODEL, max_tokens=512, system="Answer in one sentence.",
                                   messages=[{"role": "user", "content": PLAIN_QUESTION}])
    stream = client.messages.create(model=MODEL, max_tokens=512, stream=True,
                                    messages=[{"role": "user", "content": STREAM_QUESTION}])
    streamed = "".join(e.delta.text for e in stream if e.type == "content_block_delta" and e.delta.type == "text_delta")
    err429 = failed(lambda: client.messages.create(model=MODEL, max_tokens=64,
                                                   messages=[{"role": "user", "content": RATE_LIMITED}]))
    err500 = failed(lambda: client.messages.create(model=MODEL, max_tokens=64,
                                                   messages=[{"role": "user", "content": BROKEN}]))
assert provider.force_flush(30_000)
provider.shutdown()
report(trace_id=trace_id_of(root), plain=plain.content[0].text, streamed=streamed, errors=[err429, err500])

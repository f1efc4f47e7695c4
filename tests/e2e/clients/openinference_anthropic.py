"""OpenInference's Anthropic instrumentation around the real `anthropic` client (its built-in
tracing off, so each call is traced once): a plain and a streamed call, a 429 and a 500."""

from anthropic import Anthropic
from openinference.instrumentation.anthropic import AnthropicInstrumentor

from _common import (BROKEN, MOCK, PLAIN_QUESTION, RATE_LIMITED, STREAM_QUESTION, failed, otlp_provider,
                     report, trace_id_of)

MODEL = "claude-sonnet-4-5"

provider = otlp_provider("e2e-openinference-anthropic")
AnthropicInstrumentor().instrument(tracer_provider=provider)
client = Anthropic(base_url=MOCK, api_key="sk-ant-e2e", max_retries=0, open_telemetry=False)
with provider.get_tracer("e2e.app").start_as_current_span("e2e.openinference-anthropic") as root:
    plain = client.messages.create(model=MODEL, max_tokens=512, system="Answer in one sentence.",
                                   messages=[{"role": "user", "content": PLAIN_QUESTION}])
    with client.messages.stream(model=MODEL, max_tokens=512,
                                messages=[{"role": "user", "content": STREAM_QUESTION}]) as stream:
        streamed = "".join(stream.text_stream)
    err429 = failed(lambda: client.messages.create(model=MODEL, max_tokens=64,
                                                   messages=[{"role": "user", "content": RATE_LIMITED}]))
    err500 = failed(lambda: client.messages.create(model=MODEL, max_tokens=64,
                                                   messages=[{"role": "user", "content": BROKEN}]))
assert provider.force_flush(30_000)
provider.shutdown()
report(trace_id=trace_id_of(root), plain=plain.content[0].text, streamed=streamed, errors=[err429, err500])

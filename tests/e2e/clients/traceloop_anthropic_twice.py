"""One provider call recorded twice, as happens in real set-ups: Traceloop's Anthropic
instrumentation AND the Anthropic SDK's own built-in tracing both trace the same
`messages.create` (same response id, model and usage) under one Traceloop workflow. Spanlens must
keep both spans and count the call once. Runs in the Traceloop venv."""

import os

from anthropic import Anthropic
from opentelemetry import trace
from traceloop.sdk import Traceloop
from traceloop.sdk.decorators import workflow

from _common import MOCK, PLAIN_QUESTION, SPANLENS, STREAM_QUESTION, report, trace_id_of

MODEL = "claude-sonnet-4-5"

os.environ.setdefault("TRACELOOP_METRICS_ENABLED", "false")
os.environ.setdefault("TRACELOOP_LOGGING_ENABLED", "false")
Traceloop.init(app_name="e2e-traceloop-anthropic", api_endpoint=SPANLENS, disable_batch=True,
               telemetry_enabled=False, traceloop_sync_enabled=False)
# The SDK's own tracing is on by default and uses the global provider, which Traceloop set.
client = Anthropic(base_url=MOCK, api_key="sk-ant-e2e", max_retries=0)


@workflow(name="e2e.twice")
def run() -> dict:
    trace_id = trace_id_of(trace.get_current_span())
    plain = client.messages.create(model=MODEL, max_tokens=512,
                                   messages=[{"role": "user", "content": PLAIN_QUESTION}])
    stream = client.messages.create(model=MODEL, max_tokens=512, stream=True,
                                    messages=[{"role": "user", "content": STREAM_QUESTION}])
    streamed = "".join(e.delta.text for e in stream if e.type == "content_block_delta" and e.delta.type == "text_delta")
    return {"trace_id": trace_id, "plain": plain.content[0].text, "streamed": streamed}


result = run()
assert trace.get_tracer_provider().force_flush(30_000)
report(**result)

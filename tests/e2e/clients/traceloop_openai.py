"""Traceloop's OpenLLMetry SDK (`traceloop-sdk`, its own OTLP/HTTP exporter pointed at Spanlens) with
its OpenAI instrumentation around the real `openai` client: a workflow with a plain and a streamed
chat call, a 429 and a 500. Runs in its own venv: traceloop-sdk pins OpenTelemetry 1.45.1."""

import os

from openai import OpenAI
from opentelemetry import trace
from traceloop.sdk import Traceloop
from traceloop.sdk.decorators import workflow

from _common import MOCK, SPANLENS, openai_chat_calls, report, trace_id_of

MODEL = "gpt-4o-mini"

os.environ.setdefault("TRACELOOP_METRICS_ENABLED", "false")
os.environ.setdefault("TRACELOOP_LOGGING_ENABLED", "false")
Traceloop.init(app_name="e2e-traceloop", api_endpoint=SPANLENS, disable_batch=True, telemetry_enabled=False,
               traceloop_sync_enabled=False)
client = OpenAI(base_url=f"{MOCK}/v1", api_key="sk-e2e", max_retries=0)


@workflow(name="e2e.traceloop")
def run() -> dict:
    trace_id = trace_id_of(trace.get_current_span())
    return {"trace_id": trace_id, **openai_chat_calls(client, MODEL)}


result = run()
provider = trace.get_tracer_provider()
assert provider.force_flush(30_000)
report(**result)

"""OpenTelemetry's own `opentelemetry-instrumentation-openai-v2` around the real `openai` client, with
message content captured on the spans: a plain and a streamed chat call, a 429 and a 500."""

import os

os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "gen_ai_latest_experimental")
os.environ.setdefault("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "SPAN_ONLY")

from openai import OpenAI  # noqa: E402
from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor  # noqa: E402

from _common import MOCK, openai_chat_calls, otlp_provider, report, trace_id_of  # noqa: E402

MODEL = "gpt-4o-mini"

provider = otlp_provider("e2e-otel-openai-v2")
OpenAIInstrumentor().instrument(tracer_provider=provider)
client = OpenAI(base_url=f"{MOCK}/v1", api_key="sk-e2e", max_retries=0)
with provider.get_tracer("e2e.app").start_as_current_span("e2e.otel-openai-v2") as root:
    result = openai_chat_calls(client, MODEL)
assert provider.force_flush(30_000)
provider.shutdown()
report(trace_id=trace_id_of(root), **result)

"""`opentelemetry-instrumentation-openai-v2` with message content sent ONLY as GenAI events, which
the OpenTelemetry SDK exports as OTLP log records to Spanlens' `/v1/logs`: the spans carry tokens
and models, the log records carry the messages. Logs are exported as each is emitted and spans
only at the end, so every log record reaches Spanlens before its span."""

import os

os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "gen_ai_latest_experimental")
os.environ["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] = "EVENT_ONLY"
os.environ["OTEL_INSTRUMENTATION_GENAI_EMIT_EVENT"] = "true"

from openai import OpenAI  # noqa: E402
from opentelemetry._logs import set_logger_provider  # noqa: E402
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter  # noqa: E402
from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor  # noqa: E402
from opentelemetry.sdk._logs import LoggerProvider  # noqa: E402
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor  # noqa: E402
from opentelemetry.sdk.resources import Resource  # noqa: E402

from _common import (MOCK, PLAIN_QUESTION, SPANLENS, STREAM_QUESTION, otlp_provider, report,  # noqa: E402
                     trace_id_of)

MODEL = "gpt-4o-mini"

provider = otlp_provider("e2e-otel-openai-v2-events")
logs = LoggerProvider(resource=Resource.create({"service.name": "e2e-otel-openai-v2-events"}))
logs.add_log_record_processor(SimpleLogRecordProcessor(OTLPLogExporter(endpoint=f"{SPANLENS}/v1/logs")))
set_logger_provider(logs)
OpenAIInstrumentor().instrument(tracer_provider=provider, logger_provider=logs)
client = OpenAI(base_url=f"{MOCK}/v1", api_key="sk-e2e", max_retries=0)
with provider.get_tracer("e2e.app").start_as_current_span("e2e.otel-openai-v2-events") as root:
    plain = client.chat.completions.create(model=MODEL, messages=[
        {"role": "system", "content": "Answer in one sentence."}, {"role": "user", "content": PLAIN_QUESTION}])
    stream = client.chat.completions.create(model=MODEL, stream=True, stream_options={"include_usage": True},
                                            messages=[{"role": "user", "content": STREAM_QUESTION}])
    streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
logs.force_flush(30_000)
assert provider.force_flush(30_000)
provider.shutdown()
logs.shutdown()
report(trace_id=trace_id_of(root), plain=plain.choices[0].message.content, streamed=streamed)

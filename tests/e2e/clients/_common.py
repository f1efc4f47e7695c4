"""What every client script shares: where Spanlens and the mock LLM are, the calls each script makes,
and how it hands its result back to the test (one `E2E_RESULT {json}` line on stdout).

A script runs in its own process, under the venv of its library (some pin OpenTelemetry versions
that conflict with the others), so nothing here may import more than the OpenTelemetry SDK.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from typing import Any

#: Spanlens' HTTP base URL and the mock LLM's, set by the test that runs the script.
SPANLENS = os.environ["E2E_SPANLENS_URL"]
MOCK = os.environ["E2E_MOCK_URL"]

#: The questions each script asks; the mock answers "Mock answer to: <question>".
PLAIN_QUESTION = "What is the capital of France?"
STREAM_QUESTION = "And of Italy?"
#: Markers that make the mock answer 429 and 500.
RATE_LIMITED = "FAIL_429 please"
BROKEN = "FAIL_500 please"


def otlp_provider(service: str):
    """A tracer provider that exports to Spanlens over OTLP/HTTP protobuf, or over OTLP/gRPC
    (gzip) when the test sets `E2E_OTLP=grpc`."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    if os.environ.get("E2E_OTLP") == "grpc":
        import grpc
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as Grpc

        exporter = Grpc(endpoint=os.environ["E2E_SPANLENS_GRPC"], insecure=True,
                        compression=grpc.Compression.Gzip)
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=f"{SPANLENS}/v1/traces")
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def failed(call: Callable[[], Any]) -> str:
    """Runs a call that must fail and returns the exception's type name."""
    try:
        call()
    except Exception as e:  # noqa: BLE001 - the type name is the result
        return type(e).__name__
    raise AssertionError("the call was expected to fail")


def openai_chat_calls(client: Any, model: str) -> dict[str, Any]:
    """The four Chat Completions calls every OpenAI script makes with the real `openai` client: a
    plain one (with a system message), a streamed one with usage, then a 429 and a 500. Returns
    the answers' texts and the two exception type names."""
    plain = client.chat.completions.create(model=model, messages=[
        {"role": "system", "content": "Answer in one sentence."}, {"role": "user", "content": PLAIN_QUESTION}])
    stream = client.chat.completions.create(model=model, stream=True, stream_options={"include_usage": True},
                                            messages=[{"role": "user", "content": STREAM_QUESTION}])
    streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    errors = [failed(lambda q=q: client.chat.completions.create(model=model, messages=[{"role": "user", "content": q}]))
              for q in (RATE_LIMITED, BROKEN)]
    return {"plain": plain.choices[0].message.content, "streamed": streamed, "errors": errors}


def trace_id_of(span: Any) -> str:
    return format(span.get_span_context().trace_id, "032x")


def report(**result: Any) -> None:
    print("E2E_RESULT " + json.dumps(result), flush=True)
    sys.stdout.flush()

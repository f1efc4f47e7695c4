"""The Langfuse Python SDK (OTel-based; exports to Spanlens' Langfuse-compatible
/api/public/otel/v1/traces) with its OpenAI integration (`langfuse.openai`) around the real
`openai` client: an observation with a plain and a streamed chat call, a 429 and a 500."""

import os

from _common import MOCK, SPANLENS, openai_chat_calls, report

os.environ.update(LANGFUSE_PUBLIC_KEY="pk-lf-e2e", LANGFUSE_SECRET_KEY="sk-lf-e2e", LANGFUSE_BASE_URL=SPANLENS)

from langfuse import Langfuse  # noqa: E402
from langfuse.openai import OpenAI  # noqa: E402

MODEL = "gpt-4o-mini"

langfuse = Langfuse(public_key="pk-lf-e2e", secret_key="sk-lf-e2e", base_url=SPANLENS)
client = OpenAI(base_url=f"{MOCK}/v1", api_key="sk-e2e", max_retries=0)
with langfuse.start_as_current_observation(name="e2e.langfuse", as_type="span"):
    trace_id = langfuse.get_current_trace_id()
    result = openai_chat_calls(client, MODEL)
langfuse.flush()
langfuse.shutdown()
report(trace_id=trace_id, **result)

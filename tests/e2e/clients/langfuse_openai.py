"""The Langfuse Python SDK (OTel-based; exports to Spanlens' Langfuse-compatible
/api/public/otel/v1/traces) with its OpenAI integration (`langfuse.openai`) around the real
`openai` client: an observation with a plain and a streamed chat call, a 429 and a 500."""

import os

from _common import (BROKEN, MOCK, PLAIN_QUESTION, RATE_LIMITED, SPANLENS, STREAM_QUESTION, failed, report)

os.environ.update(LANGFUSE_PUBLIC_KEY="pk-lf-e2e", LANGFUSE_SECRET_KEY="sk-lf-e2e", LANGFUSE_BASE_URL=SPANLENS)

from langfuse import Langfuse  # noqa: E402
from langfuse.openai import OpenAI  # noqa: E402

MODEL = "gpt-4o-mini"

langfuse = Langfuse(public_key="pk-lf-e2e", secret_key="sk-lf-e2e", base_url=SPANLENS)
client = OpenAI(base_url=f"{MOCK}/v1", api_key="sk-e2e", max_retries=0)
with langfuse.start_as_current_observation(name="e2e.langfuse", as_type="span"):
    trace_id = langfuse.get_current_trace_id()
    plain = client.chat.completions.create(model=MODEL, messages=[
        {"role": "system", "content": "Answer in one sentence."}, {"role": "user", "content": PLAIN_QUESTION}])
    stream = client.chat.completions.create(model=MODEL, stream=True, stream_options={"include_usage": True},
                                            messages=[{"role": "user", "content": STREAM_QUESTION}])
    streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    err429 = failed(lambda: client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": RATE_LIMITED}]))
    err500 = failed(lambda: client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": BROKEN}]))
langfuse.flush()
langfuse.shutdown()
report(trace_id=trace_id, plain=plain.choices[0].message.content, streamed=streamed, errors=[err429, err500])

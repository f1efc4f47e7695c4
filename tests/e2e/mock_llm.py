"""A local, deterministic OpenAI-compatible server for the end-to-end tests.

It speaks just enough of the OpenAI HTTP API for the real `openai` client and the OpenAI Agents
SDK to work against it:

* ``POST /v1/chat/completions``: non-streaming, and streaming (SSE) with
  ``stream_options.include_usage`` giving a final chunk that carries the usage. A request that
  offers tools and has no tool result yet gets a tool call back; once a ``tool`` message is present
  the answer is text.
* ``POST /v1/responses``: the Responses API the Agents SDK uses by default, non-streaming and
  streaming, with the same tool-call turn: first a ``function_call`` item, then (after a
  ``function_call_output`` input item) a text message.

* ``POST /v1/messages``: the Anthropic Messages API, non-streaming and streaming (the SSE events
  ``message_start`` … ``message_stop``), with the same tool-use turn.

* ``POST /v1beta/models/{model}:generateContent`` and ``:streamGenerateContent``: the Gemini API,
  a whole ``GenerateContentResponse``, or with ``?alt=sse`` server-sent chunks (``\r\n``-separated,
  as Google sends them; without ``alt=sse`` a JSON array of the same chunks), text only.

* ``POST /v1/embeddings``: OpenAI embeddings (small fixed vectors, fixed usage).

Every usage object reports cached input tokens and reasoning tokens (OpenAI) or cache reads and
5-minute and 1-hour cache writes (Anthropic), with fixed numbers taken from the tables below so the
tests can compute the expected canonical counts and the cost themselves.

A last user message containing ``FAIL_429`` or ``FAIL_500`` gets that HTTP error in the API's own
error shape (a 429 with ``retry-after`` and rate-limit headers), so error spans can be checked.
Streamed answers wait ``FIRST_CHUNK_DELAY_S`` before their first chunk so a time to first token is
measurable. Every answer served is recorded in ``MockLLM.served``.
"""

from __future__ import annotations

import copy
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: Wait before the first streamed chunk (seconds); the traced TTFT must be at least this.
FIRST_CHUNK_DELAY_S = 0.150

#: Fixed `created` timestamp: deterministic answers.
CREATED = 1_763_800_000

#: Snapshot names the mock answers with, as the real API does (`gpt-5-mini` → dated snapshot).
SNAPSHOTS = {
    "gpt-5-mini": "gpt-5-mini-2025-08-07",
    "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
    "gpt-4o": "gpt-4o-2024-08-06",
    "gpt-4.1-mini": "gpt-4.1-mini-2025-04-14",
}

# Raw usage in each API's own shape. OpenAI's rule: prompt/input tokens INCLUDE the cached tokens,
# completion/output tokens INCLUDE the reasoning tokens.
CHAT_USAGE = {
    "plain": {"prompt": 2006, "cached": 1920, "completion": 300, "reasoning": 128},
    "stream": {"prompt": 1544, "cached": 1280, "completion": 212, "reasoning": 64},
    "tool_call": {"prompt": 1310, "cached": 1024, "completion": 41, "reasoning": 16},
    "after_tool": {"prompt": 1402, "cached": 1152, "completion": 57, "reasoning": 0},
}
RESPONSES_USAGE = {
    "plain": {"prompt": 980, "cached": 768, "completion": 120, "reasoning": 32},
    "tool_call": {"prompt": 1210, "cached": 1024, "completion": 38, "reasoning": 12},
    "after_tool": {"prompt": 1333, "cached": 1152, "completion": 61, "reasoning": 24},
}

# Anthropic's rule is the other way round: `input_tokens` EXCLUDES the cache reads and writes.
ANTHROPIC_USAGE = {
    "plain": {"input": 312, "cache_read": 2048, "write_5m": 1024, "write_1h": 512, "output": 187},
    "stream": {"input": 145, "cache_read": 1536, "write_5m": 256, "write_1h": 0, "output": 96},
    "tool_call": {"input": 401, "cache_read": 1024, "write_5m": 0, "write_1h": 128, "output": 44},
    "after_tool": {"input": 77, "cache_read": 1664, "write_5m": 0, "write_1h": 0, "output": 52},
}

# Gemini's `usageMetadata`: `promptTokenCount` INCLUDES `cachedContentTokenCount`, but
# `candidatesTokenCount` EXCLUDES `thoughtsTokenCount` (thinking tokens are billed as output).
GEMINI_USAGE = {
    "plain": {"prompt": 1830, "cached": 1024, "candidates": 210, "thoughts": 96},
    "stream": {"prompt": 1240, "cached": 512, "candidates": 150, "thoughts": 64},
}

#: Input tokens every `/v1/embeddings` answer reports.
EMBEDDING_USAGE = {"prompt": 24}

#: Dimensions of the mock's embedding vectors.
EMBEDDING_DIMS = 8

#: Gemini paths: `/v1beta/models/{model}:{method}` (also `/v1/…`).
GEMINI_PATH = re.compile(r"^/v1(?:beta)?/models/([^/:]+):(generateContent|streamGenerateContent)$")

#: Snapshot names for Anthropic models, as the API answers.
ANTHROPIC_SNAPSHOTS = {
    "claude-sonnet-4-5": "claude-sonnet-4-5-20250929",
    "claude-haiku-4-5": "claude-haiku-4-5-20251001",
}

#: Markers in the last user message that make the mock answer with an HTTP error.
FAILURES = {"FAIL_429": 429, "FAIL_500": 500}

#: What the mock answers an LLM-as-judge request with.
JUDGE_VERDICT = '{"score": 0.75, "reason": "mock judge: relevant and complete"}'

#: The argument the mock asks every tool to be called with.
TOOL_ARGUMENTS = {"city": "Paris"}


def chat_usage(u: dict[str, int]) -> dict[str, Any]:
    """A Chat Completions `usage` object (CompletionUsage)."""
    return {
        "prompt_tokens": u["prompt"],
        "completion_tokens": u["completion"],
        "total_tokens": u["prompt"] + u["completion"],
        "prompt_tokens_details": {"cached_tokens": u["cached"], "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": u["reasoning"],
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def responses_usage(u: dict[str, int]) -> dict[str, Any]:
    """A Responses API `usage` object (ResponseUsage)."""
    return {
        "input_tokens": u["prompt"],
        "input_tokens_details": {"cached_tokens": u["cached"], "cache_write_tokens": 0},
        "output_tokens": u["completion"],
        "output_tokens_details": {"reasoning_tokens": u["reasoning"]},
        "total_tokens": u["prompt"] + u["completion"],
    }


def anthropic_usage(u: dict[str, int]) -> dict[str, Any]:
    """A Messages API `usage` object."""
    return {
        "input_tokens": u["input"],
        "cache_creation_input_tokens": u["write_5m"] + u["write_1h"],
        "cache_read_input_tokens": u["cache_read"],
        "cache_creation": {"ephemeral_5m_input_tokens": u["write_5m"], "ephemeral_1h_input_tokens": u["write_1h"]},
        "output_tokens": u["output"],
        "service_tier": "standard",
    }


def gemini_usage(u: dict[str, int]) -> dict[str, Any]:
    """A Gemini `usageMetadata` object."""
    return {
        "promptTokenCount": u["prompt"],
        "candidatesTokenCount": u["candidates"],
        "totalTokenCount": u["prompt"] + u["candidates"] + u["thoughts"],
        "cachedContentTokenCount": u["cached"],
        "thoughtsTokenCount": u["thoughts"],
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": u["prompt"]}],
    }


def gemini_canonical(u: dict[str, int]) -> dict[str, int]:
    """The canonical counts of a GEMINI_USAGE row: output includes the thinking tokens."""
    out = u["candidates"] + u["thoughts"]
    return {
        "input_tokens": u["prompt"],
        "output_tokens": out,
        "cache_read_tokens": u["cached"],
        "cache_write_tokens": 0,
        "reasoning_tokens": u["thoughts"],
        "total_tokens": u["prompt"] + out,
    }


def gemini_messages(req: dict[str, Any]) -> list[dict[str, Any]]:
    """Gemini `contents` as OpenAI-style messages (`model` turns become `assistant`)."""
    out = []
    for c in req.get("contents") or []:
        if isinstance(c, dict):
            role = "assistant" if c.get("role") == "model" else (c.get("role") or "user")
            out.append({"role": role, "content": _text_of(c.get("parts"))})
    return out


def anthropic_canonical(u: dict[str, int]) -> dict[str, int]:
    """The canonical counts of an ANTHROPIC_USAGE row: input includes the cache reads and writes."""
    inp = u["input"] + u["cache_read"] + u["write_5m"] + u["write_1h"]
    return {
        "input_tokens": inp,
        "output_tokens": u["output"],
        "cache_read_tokens": u["cache_read"],
        "cache_write_tokens": u["write_5m"] + u["write_1h"],
        "reasoning_tokens": 0,
        "total_tokens": inp + u["output"],
    }


def failure_of(messages: Any) -> int | None:
    """The HTTP status a FAIL_* marker in the last user message asks for."""
    if isinstance(messages, str):
        last = messages
    else:
        users = [m for m in (messages or []) if isinstance(m, dict) and m.get("role") == "user"]
        last = _text_of(users[-1].get("content")) if users else ""
    return next((code for marker, code in FAILURES.items() if marker in last), None)


def _text_of(content: Any) -> str:
    """The plain text of a message content (a string or a list of parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def _pieces(text: str) -> list[str]:
    """The text cut into word-sized stream deltas that join back to exactly `text`."""
    return re.findall(r"\s*\S+", text) or [text]


class MockLLM:
    """The server; `start()` binds a free loopback port, `stop()` shuts it down."""

    def __init__(self) -> None:
        self.served: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._counter = 0
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> "MockLLM":
        handler = type("BoundHandler", (_Handler,), {"mock": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="mock-llm", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def port(self) -> int:
        assert self._httpd is not None
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        """What to give the `openai` client as `base_url`."""
        return f"http://127.0.0.1:{self.port}/v1"

    def served_for(self, path: str) -> list[dict[str, Any]]:
        """The answers served on `path`, oldest first."""
        with self._lock:
            return [s for s in self.served if s["path"] == path]

    def clear(self) -> None:
        with self._lock:
            self.served.clear()

    # -- helpers ---------------------------------------------------------------------------------

    def _next_id(self, prefix: str) -> str:
        with self._lock:
            self._counter += 1
            return f"{prefix}_mock{self._counter:06d}"

    def _record(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self.served.append(entry)

    # -- Chat Completions ------------------------------------------------------------------------

    def chat_completion(self, req: dict[str, Any]) -> tuple[str, dict[str, Any], str | None, str]:
        """Decides the answer: (scenario, usage, tool call name or None, text)."""
        messages = req.get("messages") or []
        tools = req.get("tools") or []
        system = next((_text_of(m.get("content")) for m in messages if m.get("role") == "system"), "")
        if "You are an evaluator" in system:
            # An LLM-as-judge request (Spanlens evaluators): a verdict in the asked-for shape.
            return "plain", CHAT_USAGE["plain"], None, JUDGE_VERDICT
        has_tool_result = any(m.get("role") == "tool" for m in messages if isinstance(m, dict))
        if tools and not has_tool_result:
            name = tools[0].get("function", {}).get("name", "tool")
            return "tool_call", CHAT_USAGE["tool_call"], name, ""
        if has_tool_result:
            result = next(_text_of(m.get("content")) for m in reversed(messages) if m.get("role") == "tool")
            return "after_tool", CHAT_USAGE["after_tool"], None, f"The tool said: {result}"
        last_user = next(
            (_text_of(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), ""
        )
        scenario = "stream" if req.get("stream") else "plain"
        return scenario, CHAT_USAGE[scenario], None, f"Mock answer to: {last_user}"

    # -- Responses -------------------------------------------------------------------------------

    def response_object(self, req: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """A complete `Response` object for the request (status completed)."""
        items = req.get("input")
        items = items if isinstance(items, list) else []
        tools = [t for t in (req.get("tools") or []) if t.get("type") == "function"]
        outputs = [i for i in items if isinstance(i, dict) and i.get("type") == "function_call_output"]
        model = req.get("model") or "gpt-4o-mini"
        resp_id = self._next_id("resp")
        if tools and not outputs:
            scenario = "tool_call"
            output = [
                {
                    "type": "function_call",
                    "id": self._next_id("fc"),
                    "call_id": self._next_id("call"),
                    "name": tools[0]["name"],
                    "arguments": json.dumps(TOOL_ARGUMENTS),
                    "status": "completed",
                }
            ]
        else:
            if outputs:
                scenario = "after_tool"
                text = f"The tool said: {_text_of(outputs[-1].get('output'))}"
            else:
                scenario = "plain"
                user = req.get("input") if isinstance(req.get("input"), str) else ""
                for i in reversed(items):
                    if isinstance(i, dict) and i.get("role") == "user":
                        user = _text_of(i.get("content"))
                        break
                text = f"Mock answer to: {user}"
            output = [
                {
                    "type": "message",
                    "id": self._next_id("msg"),
                    "role": "assistant",
                    "status": "completed",
                    "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
                }
            ]
        response = {
            "id": resp_id,
            "object": "response",
            "created_at": CREATED,
            "completed_at": CREATED + 1,
            "status": "completed",
            "background": False,
            "error": None,
            "incomplete_details": None,
            "instructions": req.get("instructions"),
            "max_output_tokens": req.get("max_output_tokens"),
            "model": SNAPSHOTS.get(model, model),
            "output": output,
            "parallel_tool_calls": bool(req.get("parallel_tool_calls", True)),
            "previous_response_id": req.get("previous_response_id"),
            "reasoning": {"effort": None, "summary": None},
            "service_tier": "default",
            "store": False,
            "temperature": req.get("temperature") if req.get("temperature") is not None else 1.0,
            "text": {"format": {"type": "text"}, "verbosity": "medium"},
            "tool_choice": req.get("tool_choice") or "auto",
            "tools": req.get("tools") or [],
            "top_p": req.get("top_p") if req.get("top_p") is not None else 1.0,
            "truncation": "disabled",
            "usage": responses_usage(RESPONSES_USAGE[scenario]),
            "user": None,
            "metadata": {},
        }
        return scenario, response


class _Handler(BaseHTTPRequestHandler):
    mock: MockLLM  # set on the bound subclass
    protocol_version = "HTTP/1.1"
    server_version = "mock-llm/1"
    # Small SSE writes must leave at once: with Nagle's algorithm a chunk can wait for the
    # client's delayed ACK, which blurs the time to first token by tens of milliseconds.
    disable_nagle_algorithm = True

    def log_message(self, fmt: str, *args: Any) -> None:  # quiet
        pass

    # -- plumbing --------------------------------------------------------------------------------

    def _read_json(self) -> dict[str, Any]:
        n = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(n) if n else b""
        return json.loads(raw or b"{}")

    def _send_json(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.send_header("x-request-id", "req_mock")
        self.end_headers()
        self.wfile.write(data)

    def _start_sse(self) -> None:
        # No content-length: the stream ends when the connection closes.
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("connection", "close")
        self.end_headers()
        self.close_connection = True
        self.wfile.flush()

    def _sse(self, data: Any, event: str | None = None) -> None:
        payload = data if isinstance(data, str) else json.dumps(data)
        msg = (f"event: {event}\n" if event else "") + f"data: {payload}\n\n"
        self.wfile.write(msg.encode())
        self.wfile.flush()

    def do_GET(self) -> None:  # noqa: N802
        if self.path.rstrip("/") == "/v1/models":
            self._send_json(200, {"object": "list", "data": [
                {"id": m, "object": "model", "created": CREATED, "owned_by": "mock"} for m in SNAPSHOTS
            ]})
        else:
            self._send_json(404, {"error": {"message": f"no route {self.path}", "type": "invalid_request_error"}})

    def do_POST(self) -> None:  # noqa: N802
        try:
            req = self._read_json()
        except ValueError as e:
            self._send_json(400, {"error": {"message": f"invalid json: {e}", "type": "invalid_request_error"}})
            return
        path = self.path.split("?", 1)[0].rstrip("/")
        gemini = GEMINI_PATH.match(path)
        if gemini:
            status = failure_of(gemini_messages(req))
            if status is not None:
                self._fail(path, status, req)
            else:
                self._gemini(req, gemini.group(1), gemini.group(2) == "streamGenerateContent")
            return
        status = failure_of(req.get("messages") if "messages" in req else req.get("input"))
        if status is not None and path in ("/v1/chat/completions", "/v1/responses", "/v1/messages"):
            self._fail(path, status, req)
        elif path == "/v1/embeddings":
            self._embeddings(req)
        elif path == "/v1/chat/completions":
            self._chat(req)
        elif path == "/v1/responses":
            self._responses(req)
        elif path == "/v1/messages":
            self._messages(req)
        else:
            self._send_json(404, {"error": {"message": f"no route {path}", "type": "invalid_request_error"}})

    # -- Errors ----------------------------------------------------------------------------------

    def _fail(self, path: str, status: int, req: dict[str, Any]) -> None:
        """A 429 (with retry-after and rate-limit headers) or a 500, in the API's own error shape."""
        self.mock._record({"path": path, "scenario": f"error_{status}", "stream": bool(req.get("stream")),
                           "request_model": req.get("model"), "status": status, "request": req})
        kind = "rate_limit_error" if status == 429 else "api_error"
        message = "Rate limit reached (mock)" if status == 429 else "Internal server error (mock)"
        if path == "/v1/messages":
            body: dict[str, Any] = {"type": "error", "error": {"type": kind, "message": message},
                                    "request_id": "req_mock_error"}
        elif GEMINI_PATH.match(path):
            body = {"error": {"code": status, "message": message,
                              "status": "RESOURCE_EXHAUSTED" if status == 429 else "INTERNAL"}}
        else:
            body = {"error": {"message": message, "type": "requests" if status == 429 else "server_error",
                              "param": None, "code": "rate_limit_exceeded" if status == 429 else None}}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.send_header("x-request-id", "req_mock_error")
        self.send_header("request-id", "req_mock_error")
        if status == 429:
            self.send_header("retry-after", "1")
            self.send_header("x-ratelimit-limit-requests", "500")
            self.send_header("x-ratelimit-remaining-requests", "0")
            self.send_header("x-ratelimit-reset-requests", "1s")
            self.send_header("anthropic-ratelimit-requests-limit", "50")
            self.send_header("anthropic-ratelimit-requests-remaining", "0")
        self.end_headers()
        self.wfile.write(data)

    # -- Chat Completions ------------------------------------------------------------------------

    def _chat(self, req: dict[str, Any]) -> None:
        mock = self.mock
        if req.get("stream_options") is not None and not req.get("stream"):
            # As the real API answers: a client bug the tests should see.
            self._send_json(400, {"error": {
                "message": "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                "type": "invalid_request_error", "param": "stream_options", "code": None}})
            return
        if not req.get("model") or not isinstance(req.get("messages"), list):
            self._send_json(400, {"error": {"message": "'model' and 'messages' are required",
                                            "type": "invalid_request_error", "param": None, "code": None}})
            return
        scenario, u, tool_name, text = mock.chat_completion(req)
        model = req.get("model") or "gpt-4o-mini"
        answer_model = SNAPSHOTS.get(model, model)
        cid = mock._next_id("chatcmpl")
        usage = chat_usage(u)
        stream = bool(req.get("stream"))
        include_usage = bool((req.get("stream_options") or {}).get("include_usage"))
        tool_call = None
        if tool_name is not None:
            tool_call = {
                "id": mock._next_id("call"),
                "type": "function",
                "function": {"name": tool_name, "arguments": json.dumps(TOOL_ARGUMENTS)},
            }
        finish = "tool_calls" if tool_call else "stop"
        mock._record({
            "path": "/v1/chat/completions", "scenario": scenario, "stream": stream,
            "request_model": model, "response_model": answer_model, "id": cid,
            "usage": usage if (include_usage or not stream) else None, "request": req,
        })
        if not stream:
            message: dict[str, Any] = {"role": "assistant", "content": text or None, "refusal": None,
                                       "annotations": []}
            if tool_call:
                message["tool_calls"] = [tool_call]
            self._send_json(200, {
                "id": cid,
                "object": "chat.completion",
                "created": CREATED,
                "model": answer_model,
                "system_fingerprint": "fp_mock",
                "service_tier": "default",
                "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
                "usage": usage,
            })
            return

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
            return {
                "id": cid, "object": "chat.completion.chunk", "created": CREATED, "model": answer_model,
                "system_fingerprint": "fp_mock", "service_tier": "default",
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
                **({"usage": None} if include_usage else {}),
            }

        self._start_sse()
        time.sleep(FIRST_CHUNK_DELAY_S)
        if tool_call:
            self._sse(chunk({"role": "assistant", "content": None, "tool_calls": [
                {"index": 0, "id": tool_call["id"], "type": "function",
                 "function": {"name": tool_call["function"]["name"], "arguments": ""}}]}))
            args = tool_call["function"]["arguments"]
            for piece in (args[: len(args) // 2], args[len(args) // 2:]):
                self._sse(chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}))
        else:
            self._sse(chunk({"role": "assistant", "content": "", "refusal": None}))
            for piece in _pieces(text):
                time.sleep(0.005)
                self._sse(chunk({"content": piece}))
        self._sse(chunk({}, finish))
        if include_usage:
            self._sse({
                "id": cid, "object": "chat.completion.chunk", "created": CREATED, "model": answer_model,
                "system_fingerprint": "fp_mock", "service_tier": "default", "choices": [], "usage": usage,
            })
        self._sse("[DONE]")

    # -- Responses -------------------------------------------------------------------------------

    def _responses(self, req: dict[str, Any]) -> None:
        mock = self.mock
        if not req.get("model") or req.get("input") is None:
            self._send_json(400, {"error": {"message": "'model' and 'input' are required",
                                            "type": "invalid_request_error", "param": None, "code": None}})
            return
        scenario, response = mock.response_object(req)
        stream = bool(req.get("stream"))
        mock._record({
            "path": "/v1/responses", "scenario": scenario, "stream": stream,
            "request_model": req.get("model"), "response_model": response["model"], "id": response["id"],
            "usage": response["usage"], "request": req,
        })
        if not stream:
            self._send_json(200, response)
            return

        seq = 0

        def emit(event: dict[str, Any]) -> None:
            nonlocal seq
            event["sequence_number"] = seq
            seq += 1
            self._sse(event, event["type"])

        pending = copy.deepcopy(response)
        pending.update(status="in_progress", output=[], usage=None, completed_at=None)
        self._start_sse()
        emit({"type": "response.created", "response": copy.deepcopy(pending)})
        emit({"type": "response.in_progress", "response": copy.deepcopy(pending)})
        time.sleep(FIRST_CHUNK_DELAY_S)
        for index, item in enumerate(response["output"]):
            if item["type"] == "function_call":
                emit({"type": "response.output_item.added", "output_index": index,
                      "item": {**item, "arguments": "", "status": "in_progress"}})
                args = item["arguments"]
                for piece in (args[: len(args) // 2], args[len(args) // 2:]):
                    emit({"type": "response.function_call_arguments.delta", "item_id": item["id"],
                          "output_index": index, "delta": piece})
                emit({"type": "response.function_call_arguments.done", "item_id": item["id"],
                      "output_index": index, "name": item["name"], "arguments": args})
                emit({"type": "response.output_item.done", "output_index": index, "item": item})
                continue
            text = item["content"][0]["text"]
            emit({"type": "response.output_item.added", "output_index": index,
                  "item": {**item, "status": "in_progress", "content": []}})
            emit({"type": "response.content_part.added", "item_id": item["id"], "output_index": index,
                  "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": [],
                                               "logprobs": []}})
            for piece in _pieces(text):
                time.sleep(0.005)
                emit({"type": "response.output_text.delta", "item_id": item["id"], "output_index": index,
                      "content_index": 0, "delta": piece, "logprobs": []})
            emit({"type": "response.output_text.done", "item_id": item["id"], "output_index": index,
                  "content_index": 0, "text": text, "logprobs": []})
            emit({"type": "response.content_part.done", "item_id": item["id"], "output_index": index,
                  "content_index": 0, "part": item["content"][0]})
            emit({"type": "response.output_item.done", "output_index": index, "item": item})
        emit({"type": "response.completed", "response": response})


    # -- Anthropic Messages ----------------------------------------------------------------------

    def _messages(self, req: dict[str, Any]) -> None:
        mock = self.mock
        messages = req.get("messages")
        if not req.get("model") or not isinstance(messages, list) or not req.get("max_tokens"):
            body = {"type": "error", "error": {"type": "invalid_request_error",
                                               "message": "model, messages and max_tokens are required"}}
            self._send_json(400, body)
            return
        model = req["model"]
        answer_model = ANTHROPIC_SNAPSHOTS.get(model, model)
        tools = req.get("tools") or []
        tool_results = [p for m in messages if isinstance(m, dict) and isinstance(m.get("content"), list)
                        for p in m["content"] if isinstance(p, dict) and p.get("type") == "tool_result"]
        stream = bool(req.get("stream"))
        content: list[dict[str, Any]]
        if tools and not tool_results:
            scenario, stop = "tool_call", "tool_use"
            content = [{"type": "tool_use", "id": mock._next_id("toolu"), "name": tools[0]["name"],
                        "input": dict(TOOL_ARGUMENTS)}]
        else:
            if tool_results:
                scenario = "after_tool"
                text = f"The tool said: {_text_of(tool_results[-1].get('content'))}"
            else:
                scenario = "stream" if stream else "plain"
                users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
                text = f"Mock answer to: {_text_of(users[-1].get('content')) if users else ''}"
            stop = "end_turn"
            content = [{"type": "text", "text": text}]
        u = ANTHROPIC_USAGE[scenario]
        usage = anthropic_usage(u)
        mid = mock._next_id("msg")
        mock._record({"path": "/v1/messages", "scenario": scenario, "stream": stream, "request_model": model,
                      "response_model": answer_model, "id": mid, "usage": usage, "request": req})
        message = {"id": mid, "type": "message", "role": "assistant", "model": answer_model,
                   "content": content, "stop_reason": stop, "stop_sequence": None, "usage": usage}
        if not stream:
            self._send_json(200, message)
            return
        self._start_sse()
        start = {**message, "content": [], "stop_reason": None,
                 "usage": {**usage, "output_tokens": 1}}
        self._sse({"type": "message_start", "message": start}, "message_start")
        time.sleep(FIRST_CHUNK_DELAY_S)
        for index, block in enumerate(content):
            if block["type"] == "tool_use":
                self._sse({"type": "content_block_start", "index": index,
                           "content_block": {**block, "input": {}}}, "content_block_start")
                args = json.dumps(block["input"])
                for piece in (args[: len(args) // 2], args[len(args) // 2:]):
                    self._sse({"type": "content_block_delta", "index": index,
                               "delta": {"type": "input_json_delta", "partial_json": piece}}, "content_block_delta")
            else:
                self._sse({"type": "content_block_start", "index": index,
                           "content_block": {"type": "text", "text": ""}}, "content_block_start")
                for piece in _pieces(block["text"]):
                    time.sleep(0.005)
                    self._sse({"type": "content_block_delta", "index": index,
                               "delta": {"type": "text_delta", "text": piece}}, "content_block_delta")
            self._sse({"type": "content_block_stop", "index": index}, "content_block_stop")
        self._sse({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                   "usage": usage}, "message_delta")
        self._sse({"type": "message_stop"}, "message_stop")


    # -- Gemini ----------------------------------------------------------------------------------

    def _gemini(self, req: dict[str, Any], model: str, stream: bool) -> None:
        mock = self.mock
        if not isinstance(req.get("contents"), list) or not req["contents"]:
            self._send_json(400, {"error": {"code": 400, "message": "contents is not specified",
                                            "status": "INVALID_ARGUMENT"}})
            return
        users = [m for m in gemini_messages(req) if m["role"] == "user"]
        text = f"Mock answer to: {users[-1]['content'] if users else ''}"
        scenario = "stream" if stream else "plain"
        usage = gemini_usage(GEMINI_USAGE[scenario])
        rid = mock._next_id("gemini")
        path = self.path.split("?", 1)[0].rstrip("/")
        sse = "alt=sse" in (self.path.split("?", 1) + [""])[1]
        mock._record({"path": path, "scenario": scenario, "stream": stream, "request_model": model,
                      "response_model": model, "id": rid, "usage": usage, "request": req})

        def answer(part: str, finish: str | None, usage_metadata: dict[str, Any]) -> dict[str, Any]:
            candidate: dict[str, Any] = {"content": {"role": "model", "parts": [{"text": part}]}, "index": 0}
            if finish:
                candidate["finishReason"] = finish
            return {"candidates": [candidate], "usageMetadata": usage_metadata,
                    "modelVersion": model, "responseId": rid}

        if not stream:
            self._send_json(200, answer(text, "STOP", usage))
            return
        pieces = _pieces(text)
        # Chunks before the last report only the prompt so far, as Gemini does; the last the totals.
        partial = {"promptTokenCount": usage["promptTokenCount"], "totalTokenCount": usage["promptTokenCount"]}
        chunks = [answer(p, None, partial) for p in pieces[:-1]] + [answer(pieces[-1], "STOP", usage)]
        if not sse:
            time.sleep(FIRST_CHUNK_DELAY_S)
            self._send_json(200, chunks)  # type: ignore[arg-type]
            return
        self._start_sse()
        time.sleep(FIRST_CHUNK_DELAY_S)
        for i, c in enumerate(chunks):
            if i:
                time.sleep(0.005)
            self.wfile.write(f"data: {json.dumps(c)}\r\n\r\n".encode())
            self.wfile.flush()

    # -- Embeddings ------------------------------------------------------------------------------

    def _embeddings(self, req: dict[str, Any]) -> None:
        inputs = req.get("input")
        if not req.get("model") or inputs is None:
            self._send_json(400, {"error": {"message": "'model' and 'input' are required",
                                            "type": "invalid_request_error", "param": None, "code": None}})
            return
        inputs = inputs if isinstance(inputs, list) else [inputs]
        n = EMBEDDING_USAGE["prompt"]
        usage = {"prompt_tokens": n, "total_tokens": n}
        self.mock._record({"path": "/v1/embeddings", "scenario": "plain", "stream": False,
                           "request_model": req["model"], "response_model": req["model"], "usage": usage,
                           "request": req})
        data = [{"object": "embedding", "index": i, "embedding": [round(0.125 * (k + 1), 3) for k in range(EMBEDDING_DIMS)]}
                for i in range(len(inputs))]
        self._send_json(200, {"object": "list", "data": data, "model": req["model"], "usage": usage})


if __name__ == "__main__":  # manual use: python mock_llm.py
    m = MockLLM().start()
    print(f"mock LLM on {m.base_url}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        m.stop()

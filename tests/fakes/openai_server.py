"""Fake OpenAI-compatible chat-completions endpoint (`POST /v1/chat/completions`).

It follows the documented shapes: bearer auth (401 `invalid_api_key`), request checks
(400 `invalid_request_error`: model, messages, roles, every `tool` message answering a
`tool_calls` id of the assistant message before it), responses with `choices[].message`
(`content` or `tool_calls` with JSON-text `arguments`), `finish_reason`, and `usage`;
errors as `{"error": {"message", "type", "param", "code"}}`, 429 with `Retry-After`,
5xx. Token counts are whitespace-separated words, not a real tokenizer; an answer longer
than `max_tokens` (or `max_completion_tokens`) is cut there, with `finish_reason`
`length`.

Tests script the next answers (`answer`, `call_tools`, or a function of the request);
unscripted, it answers from the first numbered passage in the prompt and cites it.
`delay_next` makes the next responses slow.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request, Response
from fastapi.responses import JSONResponse

from tests.fakes.base import FakeProvider

API_KEY = "sk-test-clawdesk"
ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
_PASSAGE = re.compile(r"^\[(\d+)\] .*\n(.+)$", re.M)


@dataclass(frozen=True)
class Scripted:
    """One answer the fake gives: text, tool calls, or both."""

    content: str | None = None
    tool_calls: list[tuple[str, dict[str, Any] | str]] = field(default_factory=list)


Script = Scripted | Callable[[dict[str, Any]], Scripted]


def answer(text: str) -> Scripted:
    """A plain text answer."""
    return Scripted(content=text)


def call_tools(*calls: tuple[str, dict[str, Any] | str]) -> Scripted:
    """Tool calls: (name, arguments) with arguments as a dict or raw JSON text."""
    return Scripted(tool_calls=list(calls))


def openai_error(
    message: str, type_: str, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def words(value: Any) -> int:
    if isinstance(value, str):
        return len(value.split())
    if isinstance(value, list):
        return sum(words(v) for v in value)
    if isinstance(value, dict):
        return sum(words(v) for v in value.values())
    return 0


def default_answer(request: dict[str, Any]) -> Scripted:
    """Quote the first numbered passage of the prompt, citing it; else ask to rephrase."""
    for message in request["messages"]:
        if message.get("role") == "system":
            match = _PASSAGE.search(str(message.get("content") or ""))
            if match:
                return answer(f"{match.group(2).strip()} [{match.group(1)}]")
    return answer("I'm not sure I understood. Could you rephrase?")


class FakeOpenAI(FakeProvider):
    name = "openai"

    def __init__(self, api_key: str = API_KEY) -> None:
        super().__init__()
        self.api_key = api_key
        self.script: deque[Script] = deque()
        self.requests: list[dict[str, Any]] = []
        self._delays: deque[float] = deque()
        self._ids = itertools.count(1)
        self._state = threading.Lock()
        self.app.post("/v1/chat/completions")(self.chat_completions)
        self.app.get("/v1/models")(self.models)

    # -- switches used by tests -------------------------------------------------------
    def then(self, *scripts: Script) -> None:
        """Give these answers to the next requests, in order."""
        with self._state:
            self.script.extend(scripts)

    def delay_next(self, n: int, seconds: float) -> None:
        """Answer the next `n` requests only after `seconds`."""
        with self._state:
            self._delays.extend([seconds] * n)

    def reset_data(self) -> None:
        with self._state:
            self.script.clear()
            self.requests.clear()
            self._delays.clear()

    @property
    def completions(self) -> int:
        """Requests that reached the chat-completions route (faults included)."""
        return len(self.calls_to("POST", "/chat/completions"))

    # -- provider shapes --------------------------------------------------------------
    def error_body(self, status: int, message: str) -> Any:
        if status == 400:
            return openai_error("Invalid request.", "invalid_request_error")
        if status == 429:
            return openai_error(
                "Rate limit reached for requests. Please try again later.",
                "requests",
                "rate_limit_exceeded",
            )
        if status == 503:
            return openai_error(
                "The engine is currently overloaded, please try again later.", "server_error"
            )
        return openai_error(
            "The server had an error while processing your request. Sorry about that!",
            "server_error",
        )

    def _denied(self, request: Request) -> Response | None:
        key = (request.headers.get("Authorization") or "").removeprefix("Bearer ")
        if key == self.api_key:
            return None
        message = f"Incorrect API key provided: {key[:3]}***{key[-4:]}."
        return JSONResponse(openai_error(message, "invalid_request_error", "invalid_api_key"), 401)

    async def models(self, request: Request) -> Response:
        if denied := self._denied(request):
            return denied
        model = {"id": "fake-model", "object": "model", "created": 0, "owned_by": "clawdesk"}
        return JSONResponse({"object": "list", "data": [model]})

    async def chat_completions(self, request: Request) -> Response:
        if denied := self._denied(request):
            return denied
        try:
            body = json.loads(await request.body())
        except json.JSONDecodeError:
            return self._invalid("We could not parse the JSON body of your request.")
        if problem := self._check(body):
            return self._invalid(*problem)
        with self._state:
            self.requests.append(body)
            delay = self._delays.popleft() if self._delays else 0.0
            script = self.script.popleft() if self.script else default_answer
        if delay:
            await asyncio.sleep(delay)
        scripted = script if isinstance(script, Scripted) else script(body)
        return JSONResponse(self._completion(body, scripted))

    # -- plumbing ---------------------------------------------------------------------
    def _invalid(self, message: str, param: str | None = None) -> Response:
        return JSONResponse(openai_error(message, "invalid_request_error", None, param), 400)

    def _check(self, body: Any) -> tuple[str, str] | None:
        if not isinstance(body, dict):
            return ("The request body must be a JSON object.", "body")
        if not isinstance(body.get("model"), str) or not body["model"]:
            return ("you must provide a model parameter", "model")
        for limit in ("max_tokens", "max_completion_tokens"):
            value = body.get(limit)
            if value is not None and (not isinstance(value, int) or value < 1):
                return (f"Invalid '{limit}': integer below minimum value.", limit)
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return ("'messages' must be a non-empty array.", "messages")
        open_calls: set[str] = set()
        for i, message in enumerate(messages):
            role = message.get("role") if isinstance(message, dict) else None
            if role not in ROLES:
                return (f"Invalid value for 'role' in messages[{i}].", f"messages.[{i}].role")
            if role == "tool":
                if message.get("tool_call_id") not in open_calls:
                    return (
                        "Invalid parameter: messages with role 'tool' must be a response "
                        "to a preceeding message with 'tool_calls'.",
                        f"messages.[{i}].role",
                    )
                open_calls.discard(message["tool_call_id"])
                continue
            if open_calls:
                return (
                    "An assistant message with 'tool_calls' must be followed by tool messages "
                    "responding to each 'tool_call_id'.",
                    f"messages.[{i}].role",
                )
            if role == "assistant":
                open_calls.update(c.get("id") for c in message.get("tool_calls") or [])
        return None

    def _completion(self, body: dict[str, Any], scripted: Scripted) -> dict[str, Any]:
        n = next(self._ids)
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        content = scripted.content
        cut = limit is not None and content is not None and words(content) > limit
        if cut:
            content = " ".join(str(content).split()[:limit])
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if scripted.tool_calls:
            message["tool_calls"] = [
                {
                    "id": f"call_{n}_{i}",
                    "type": "function",
                    "function": {
                        "name": name,
                        "arguments": args if isinstance(args, str) else json.dumps(args),
                    },
                }
                for i, (name, args) in enumerate(scripted.tool_calls)
            ]
        message["refusal"] = None
        prompt = words(body["messages"]) + words(body.get("tools") or [])
        completion = words(content or "") + words(message.get("tool_calls") or [])
        cut = cut or (limit is not None and completion > limit)
        finish = "length" if cut else "tool_calls" if scripted.tool_calls else "stop"
        return {
            "id": f"chatcmpl-fake{n:06d}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "system_fingerprint": "fp_fake",
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": finish,
                }
            ],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            },
        }

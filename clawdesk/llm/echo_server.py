"""A tiny OpenAI-compatible endpoint for development and `clawdesk bench reply --echo-llm`.

It runs no model. `POST /v1/chat/completions` answers by quoting the first numbered
knowledge-base passage of the prompt and citing it ([1]), or asks to rephrase when
there is none; `usage` counts whitespace-separated words, and an answer longer than
`max_tokens` words is cut there (`finish_reason` `length`), as an endpoint cuts at its
token limit. It accepts any bearer key.
Figures measured against it are clawdesk's own overhead on the LLM path (HTTP, prompt,
token counters), not a model's latency; `--delay-ms` adds a fixed wait per answer.

    python -m clawdesk.llm.echo_server --port 8099
    CLAWDESK_LLM_BASE_URL=http://127.0.0.1:8099/v1 CLAWDESK_LLM_API_KEY=dev clawdesk up
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from clawdesk.llm.prompt import WEAK_MATCHES
from clawdesk.runtime.ports import free_port, wait_for_port

# A passage runs from its "[n] title › section" line to the next one (or the end).
_PASSAGE = re.compile(r"^\[(\d+)\] [^\n]*\n(.+?)(?=\n\n\[\d+\] |\Z)", re.M | re.S)


def _words(value: Any) -> int:
    if isinstance(value, str):
        return len(value.split())
    if isinstance(value, list):
        return sum(_words(v) for v in value)
    if isinstance(value, dict):
        return sum(_words(v) for v in value.values())
    return 0


def echo_answer(messages: list[dict[str, Any]]) -> str:
    """The first numbered passage, cited, as an extractive model would answer; a request
    to rephrase when there is none, or when the prompt says the passages are weak
    matches (a model following the prompt's rules would not answer from them)."""
    for message in messages:
        if message.get("role") == "system":
            content = str(message.get("content") or "")
            match = _PASSAGE.search(content)
            if match and WEAK_MATCHES not in content:
                return f"{match.group(2).strip()} [{match.group(1)}]"
    return "I'm not sure I understood. Could you rephrase?"


def create_app(delay_s: float = 0.0) -> FastAPI:
    """The endpoint's FastAPI app."""
    app = FastAPI(title="clawdesk echo LLM")
    ids = itertools.count(1)

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": "echo", "object": "model", "owned_by": "dev"}]}

    @app.post("/v1/chat/completions")
    async def completions(request: Request) -> JSONResponse:
        body = await request.json()
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            error = {
                "message": "'messages' must be a non-empty array.",
                "type": "invalid_request_error",
                "param": "messages",
                "code": None,
            }
            return JSONResponse({"error": error}, 400)
        if delay_s:
            await asyncio.sleep(delay_s)
        text = echo_answer(messages)
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        finish = "stop"
        if isinstance(limit, int) and limit > 0 and _words(text) > limit:
            text, finish = " ".join(text.split()[:limit]), "length"
        prompt = _words(messages) + _words(body.get("tools") or [])
        return JSONResponse(
            {
                "id": f"chatcmpl-echo-{time.time_ns()}-{next(ids)}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": str(body.get("model") or "echo"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": finish,
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt,
                    "completion_tokens": _words(text),
                    "total_tokens": prompt + _words(text),
                },
            }
        )

    return app


@dataclass
class EchoProcess:
    """The echo endpoint in its own process on a free loopback port (so that measuring
    against it does not share the measuring process's interpreter)."""

    delay_ms: float = 0.0
    url: str = ""
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> EchoProcess:
        port = free_port()
        command = [sys.executable, "-m", "clawdesk.llm.echo_server", "--port", str(port)]
        self._proc = subprocess.Popen(
            [*command, "--delay-ms", f"{self.delay_ms:g}"], stderr=subprocess.DEVNULL
        )
        try:
            wait_for_port("127.0.0.1", port, timeout=20)
        except TimeoutError:
            self.stop()
            raise
        self.url = f"http://127.0.0.1:{port}/v1"
        return self

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()


def main() -> None:
    """Serve the echo endpoint until interrupted."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument("--delay-ms", type=float, default=0.0, help="wait before each answer")
    args = parser.parse_args()
    uvicorn.run(
        create_app(args.delay_ms / 1000),
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()

"""A local server that speaks the parts of the OpenAI API the tests need (chat completions, embeddings), so the
real `openai` SDK is exercised without a network. Scripted per test; counts every request it receives."""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DIM = 64


def bag_of_words(text: str) -> list[float]:
    """A deterministic embedding: hashed word counts, so lexical overlap decides similarity."""
    vec = [0.0] * DIM
    for word in re.findall(r"\w+", text.lower()):
        vec[int(hashlib.md5(word.encode()).hexdigest(), 16) % DIM] += 1.0
    return vec


@dataclass
class Script:
    # (request body) -> reply text for chat completions; raise LookupError for "no rule" (answered with 400)
    chat: Callable[[dict[str, Any]], str] = lambda body: ""
    fail_first: int = 0  # answer the first N requests with HTTP 500 (the SDK retries them)
    requests: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _handler(script: Script):
    class Handler(BaseHTTPRequestHandler):
        def _send(self, status: int, payload: dict[str, Any]) -> None:
            raw = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def do_POST(self):  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with script.lock:
                script.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
                failing = len(script.requests) <= script.fail_first
            if failing:
                return self._send(500, {"error": {"message": "injected failure", "type": "server_error"}})
            if self.path.endswith("/embeddings"):
                texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
                n = sum(len(t.split()) for t in texts)
                return self._send(200, {"object": "list", "model": body["model"], "usage": {"prompt_tokens": n, "total_tokens": n},
                                        "data": [{"object": "embedding", "index": i, "embedding": bag_of_words(t)}
                                                 for i, t in enumerate(texts)]})
            if self.path.endswith("/chat/completions"):
                try:
                    text = script.chat(body)
                except LookupError as exc:
                    return self._send(400, {"error": {"message": str(exc), "type": "invalid_request_error"}})
                prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body["messages"])
                return self._send(200, {
                    "id": f"chatcmpl-{len(script.requests)}", "object": "chat.completion", "created": int(time.time()),
                    "model": body["model"],
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": text}}],
                    "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": len(text.split()),
                              "total_tokens": prompt_tokens + len(text.split())},
                })
            return self._send(404, {"error": {"message": f"no route {self.path}"}})

        def log_message(self, *args):
            pass

    return Handler


class FakeOpenAI:
    """with FakeOpenAI(script) as url: ... (url ends in /v1)"""

    def __init__(self, script: Script):
        self.script = script
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(script))

    def __enter__(self) -> str:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

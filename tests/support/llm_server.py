"""A local stand-in for an OpenAI-compatible LLM server, speaking the real chat completions protocol, for the
suites (no LLM can be reached here).

One stdlib `ThreadingHTTPServer` on a free loopback port, in a daemon thread, serves

  POST /v1/chat/completions   Bearer key checked (401 with OpenAI's error body otherwise); answers a
                              `chat.completion` object with `choices` and `usage` (tokens counted as words)

and behaves as the test says (`answer`, `slow`, `fail`; `reset` between tests): a normal answer, an answer
held back until `release()` (a server slower than any timeout, without a sleep in the test), or an error
status with OpenAI's error body. Every request body it received is kept in `requests`, so that tests can
check what was sent and count the calls."""

from __future__ import annotations

import itertools
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

API_KEY = "sk-test-openhr-stand-in"
MODEL = "stand-in-chat-1"
DEFAULT_ANSWER = "You both build backends in Python, and your working hours overlap most of the day."
# How long a held answer waits for release() at most (the client has long given up by then).
HOLD_LIMIT = 60.0

_ids = itertools.count(1)


@dataclass(frozen=True)
class Behaviour:
    answer: str = DEFAULT_ANSWER
    status: int = 200
    hold: bool = False


class LlmServer:
    def __init__(self) -> None:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._lock = threading.Lock()
        self._behaviour = Behaviour()
        self._released = threading.Event()
        self._requests: list[dict] = []

    def start(self) -> LlmServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.release()
        self._httpd.shutdown()
        self._httpd.server_close()

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def env(self, **overrides: str) -> dict[str, str]:
        """The enrichment service's settings for this server."""
        return {
            "OPENHR_LLM_BASE_URL": self.url,
            "OPENHR_LLM_API_KEY": API_KEY,
            "OPENHR_LLM_MODEL": MODEL,
            **overrides,
        }

    # What the next requests get.
    def answer(self, text: str = DEFAULT_ANSWER) -> None:
        self._set(Behaviour(answer=text))

    def slow(self) -> None:
        """Hold every answer until `release()` (or HOLD_LIMIT)."""
        self._released.clear()
        self._set(Behaviour(hold=True))

    def fail(self, status: int = 500) -> None:
        self._set(Behaviour(status=status))

    def release(self) -> None:
        self._released.set()

    def reset(self) -> None:
        self.release()
        self.answer()

    @property
    def requests(self) -> list[dict]:
        """The JSON bodies received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def _set(self, behaviour: Behaviour) -> None:
        with self._lock:
            self._behaviour = behaviour

    def _complete(self, body: dict) -> tuple[int, dict]:
        with self._lock:
            self._requests.append(body)
            behaviour = self._behaviour
        if behaviour.hold:
            self._released.wait(HOLD_LIMIT)
        if behaviour.status != 200:
            return behaviour.status, _error("The server had an error while processing your request.", "server_error")
        prompt = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
        completion = len(behaviour.answer.split())
        return 200, {
            "id": f"chatcmpl-{next(_ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", MODEL),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": behaviour.answer, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
        }


def _error(message: str, kind: str, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def _handler(server: LlmServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format, *args) -> None:
            """Quiet: request lines do not belong in the test output."""

        def _send(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up waiting (a held answer)

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path.rstrip("/") != "/v1/chat/completions":
                self._send(404, _error(f"Invalid URL (POST {self.path})", "invalid_request_error"))
                return
            if self.headers.get("Authorization") != f"Bearer {API_KEY}":
                self._send(401, _error("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"))
                return
            try:
                body = json.loads(raw)
            except ValueError:
                self._send(400, _error("We could not parse the JSON body of your request.", "invalid_request_error"))
                return
            self._send(*server._complete(body))

    return Handler

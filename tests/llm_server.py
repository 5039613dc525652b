"""A real OpenAI-compatible chat server on loopback that answers from a script, for tests and bench.

    with ScriptedServer(lambda body: Reply("```python ...```")) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="test")

The script is a callable taking the request body (a dict) and returning an action, or a
list of actions served in order (the last one repeats). Usage is counted with a simple
word/punctuation tokenizer, so the token counts grow with the prompt as a real one's do.
"""

from __future__ import annotations

import dataclasses
import http.server
import json
import re
import threading
import time
from typing import Callable, Union

_TOKEN = re.compile(r"\w+|[^\w\s]")


def count_tokens(text: str) -> int:
    """Returns an approximate BPE token count: words and punctuation marks."""
    return len(_TOKEN.findall(text))


@dataclasses.dataclass(frozen=True)
class Reply:
    text: str
    prompt_tokens: int | None = None       # None: counted from the messages
    completion_tokens: int | None = None   # None: counted from the text
    finish_reason: str = "stop"


@dataclasses.dataclass(frozen=True)
class Status:
    code: int                      # 429, 500, 503, ...
    retry_after: float | None = None


@dataclasses.dataclass(frozen=True)
class Stall:
    seconds: float                 # sleep this long, then answer `then`
    then: Reply = Reply("too late")


Action = Union[Reply, Status, Stall]


class ScriptedServer:
    """A threaded HTTP server on 127.0.0.1 with an ephemeral port."""

    def __init__(self, script: Callable[[dict], Action] | list[Action]):
        self.script = script
        self.requests: list[dict] = []     # every request body received, in arrival order
        self.usage: list[dict] = []        # the usage of every reply sent
        self.props: dict | None = None     # what GET /props answers (llama.cpp's server); None: 404
        self._served = 0
        self.dead = False                  # kill(): every request from now on is dropped unanswered
        self._lock = threading.Lock()
        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        """Returns the base URL to give the openai client."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> "ScriptedServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def kill(self) -> None:
        """Makes the server die as a crashed one does: open connections are dropped unanswered, new ones refused."""
        self.dead = True
        threading.Thread(target=self.__exit__, daemon=True).start()

    def next_action(self, body: dict) -> Action:
        """Returns the action for one request and records it."""
        with self._lock:
            self.requests.append(body)
            index = self._served
            self._served += 1
        if callable(self.script):
            return self.script(body)
        return self.script[min(index, len(self.script) - 1)]

    def record_usage(self, usage: dict) -> None:
        with self._lock:
            self.usage.append(usage)

    def total_usage(self) -> dict:
        """Returns the summed usage of every reply sent."""
        with self._lock:
            return {
                "prompt_tokens": sum(u["prompt_tokens"] for u in self.usage),
                "completion_tokens": sum(u["completion_tokens"] for u in self.usage),
                "calls": len(self.usage),
            }


def _handler(server: ScriptedServer):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # keep test output clean
            return

        def do_GET(self):
            if self.path.rstrip("/").endswith("/models"):
                self._json(200, {"object": "list", "data": [{"id": "scripted", "object": "model"}]})
            elif self.path.rstrip("/").endswith("/props") and server.props is not None:
                self._json(200, server.props)
            else:
                self._json(404, {"error": {"message": "not found"}})

        def do_POST(self):
            length = int(self.headers.get("Content-Length", 0))
            body = json.loads(self.rfile.read(length) or b"{}")
            if server.dead:
                self.close_connection = True   # no answer: the client sees the connection drop
                return
            if not self.path.rstrip("/").endswith("/chat/completions"):
                self._json(404, {"error": {"message": f"no route {self.path}"}})
                return
            action = server.next_action(body)
            if isinstance(action, Stall):
                time.sleep(action.seconds)
                action = action.then
            if isinstance(action, Status):
                headers = {"Retry-After": str(action.retry_after)} if action.retry_after is not None else {}
                self._json(action.code, {"error": {"message": f"scripted {action.code}", "type": "scripted"}}, headers)
                return
            self._json(200, _completion(server, body, action))

        def _json(self, code: int, payload: dict, headers: dict | None = None):
            data = json.dumps(payload).encode()
            try:
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                return  # the client gave up (its timeout); nothing left to answer

    return Handler


def _completion(server: ScriptedServer, body: dict, reply: Reply) -> dict:
    """Returns a chat.completion object for a scripted reply, its usage recorded."""
    prompt = sum(count_tokens(m.get("content") or "") + 4 for m in body.get("messages", []))
    usage = {
        "prompt_tokens": reply.prompt_tokens if reply.prompt_tokens is not None else prompt,
        "completion_tokens": reply.completion_tokens if reply.completion_tokens is not None else count_tokens(reply.text),
    }
    usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    server.record_usage(usage)
    return {
        "id": f"chatcmpl-{len(server.usage)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "scripted"),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": reply.text},
                     "finish_reason": reply.finish_reason}],
        "usage": usage,
    }

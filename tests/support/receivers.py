"""Local receivers of pages: a Slack incoming webhook and a generic webhook on 127.0.0.1.

Each records every POST (path, headers, raw body) and answers as the real far
side would, unless told to fail: with a status (500, or 429 with Retry-After)
or by holding the answer until the client times out. Real HTTP in a thread,
so sync and async tests (and the integration chain) can use the same server.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# How long a held answer waits at most; the receiver's close releases it sooner.
HOLD_LIMIT = 30.0


@dataclass(frozen=True)
class Post:
    """One request as received."""

    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass(frozen=True)
class Answer:
    """A scripted answer: a status and body, extra headers, or holding until timeout."""

    status: int = 200
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    hold: bool = False


def valid_signature(post: Post, key: str, header: str = "X-Changegate-Signature") -> bool:
    """Whether the post's signature is the HMAC-SHA256 of its raw body with `key`."""
    expected = "sha256=" + hmac.new(key.encode(), post.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(post.header(header) or "", expected)


class Receiver:
    """A recording HTTP endpoint; `kind` is "slack" or "webhook" (what it answers on success)."""

    def __init__(self, kind: str = "webhook", signing_key: str | None = None) -> None:
        self.kind = kind
        self.signing_key = signing_key
        self.posts: list[Post] = []
        self._script: deque[Answer] = deque()
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        # A short poll keeps close() quick: shutdown waits for the loop to notice.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Receiver:
        self._thread.start()
        return self

    def close(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()

    # -- scripting failures -------------------------------------------------------

    def fail(self, status: int = 500, times: int = 1, body: bytes = b"error") -> None:
        """Answer the next `times` posts with `status`."""
        self._queue(Answer(status, body), times)

    def rate_limit(self, retry_after: str = "1", times: int = 1) -> None:
        """Answer the next `times` posts 429 with a Retry-After header."""
        answer = Answer(429, b"rate_limited", (("Retry-After", retry_after),))
        self._queue(answer, times)

    def hold(self, times: int = 1) -> None:
        """Hold the next `times` answers until the receiver closes: the client times out."""
        self._queue(Answer(hold=True), times)

    def _queue(self, answer: Answer, times: int) -> None:
        with self._lock:
            self._script.extend([answer] * times)

    # -- answering ----------------------------------------------------------------

    def _record(self, post: Post) -> Answer:
        with self._lock:
            self.posts.append(post)
            scripted = self._script.popleft() if self._script else None
        return scripted or self._contract(post)

    def _contract(self, post: Post) -> Answer:
        """What the real far side answers a post nobody scripted."""
        if self.kind == "slack":
            return _slack_answer(post)
        if self.signing_key is not None and not valid_signature(post, self.signing_key):
            return Answer(401, b"bad signature")
        return Answer(204)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                headers = {k.lower(): v for k, v in self.headers.items()}
                answer = receiver._record(Post(self.path, headers, self.rfile.read(length)))
                if answer.hold:
                    receiver._release.wait(HOLD_LIMIT)
                try:
                    self.send_response(answer.status)
                    for name, value in answer.headers:
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(answer.body)))
                    self.end_headers()
                    self.wfile.write(answer.body)
                except OSError:  # the client gave up on a held answer
                    pass

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output to what the tests say

        return Handler


def _slack_answer(post: Post) -> Answer:
    """Slack's documented answers: 200 `ok`, or 400 `invalid_payload` / `no_text`."""
    try:
        message = post.json()
    except ValueError:
        return Answer(400, b"invalid_payload")
    if not isinstance(message, dict):
        return Answer(400, b"invalid_payload")
    if not message.get("text") and not message.get("blocks"):
        return Answer(400, b"no_text")
    return Answer(200, b"ok")


@contextmanager
def receiving(kind: str = "webhook", signing_key: str | None = None) -> Iterator[Receiver]:
    """A started receiver, closed on exit."""
    receiver = Receiver(kind, signing_key).start()
    try:
        yield receiver
    finally:
        receiver.close()

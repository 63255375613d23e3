"""Limits that protect the public edges: request body size, and a per-address rate for
anonymous writes (the citizen report page needs no account, so it must not become a way to
flood the command centre)."""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodyTooLarge(Exception):
    pass


class BodySizeLimit:
    """Refuse request bodies over ``max_bytes`` with 413, whether or not Content-Length is sent.

    Checking the declared length first answers at once; counting the streamed chunks catches a
    chunked upload that lies or declares nothing, before it is spooled to disk. Paths matching
    a pattern of ``path_limits`` (data file uploads) get that pattern's limit instead.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, path_limits: Sequence[tuple[str, int]] = ()) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.path_limits = [(re.compile(pattern), limit) for pattern, limit in path_limits]

    def limit_for(self, path: str) -> int:
        return next((limit for pattern, limit in self.path_limits if pattern.fullmatch(path)), self.max_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = self.limit_for(scope.get("path", ""))
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_bytes:
            await self._refuse(send, max_bytes)
            return
        seen = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > max_bytes:
                    raise BodyTooLarge()
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except* BodyTooLarge:  # except*: middleware built on task groups wraps it in a group
            if not started:
                await self._refuse(send, max_bytes)

    async def _refuse(self, send: Send, max_bytes: int) -> None:
        mb = max_bytes / (1024 * 1024)
        body = f'{{"detail":"request body larger than {mb:g} MB","code":"too_large"}}'.encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


class RateLimiter:
    """At most ``limit`` hits per ``window_s`` per key (sliding window, in this process)."""

    def __init__(self, limit: int, window_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, key: str) -> int:
        """0 and the hit is counted when allowed; otherwise seconds until the next is allowed."""
        now = self._clock()
        with self._lock:
            hits = self._hits.setdefault(key, deque())
            while hits and hits[0] <= now - self.window_s:
                hits.popleft()
            if len(hits) >= self.limit:
                return max(int(hits[0] + self.window_s - now) + 1, 1)
            hits.append(now)
            if len(self._hits) > 100_000:  # forget idle addresses rather than grow without bound
                for stale in [k for k, v in self._hits.items() if not v]:
                    del self._hits[stale]
            return 0

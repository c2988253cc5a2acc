"""A real local HTTP receiver for notifications and webhooks: records requests, answers as scripted."""

from __future__ import annotations

import collections
import threading
from dataclasses import dataclass

from llmops_devtools.webhooks import PostServer


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


class Receiver(PostServer):
    """`with Receiver() as r:` -> `r.url`; `r.script.extend([500, 500])` answers the next requests so."""

    def __init__(self) -> None:
        self.requests: list[Received] = []  # answered 2xx
        self.attempts: list[str] = []  # every request's path, whatever the answer
        self.script: collections.deque[int] = collections.deque()
        self.lock = threading.Lock()
        super().__init__(self._answer)

    def _answer(self, path: str, headers: dict[str, str], body: bytes) -> int:
        with self.lock:
            status = self.script.popleft() if self.script else 200
            self.attempts.append(path)
            if status < 300:
                self.requests.append(Received(path, headers, body))
        return status

    def on(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if r.path == path]

    def __enter__(self) -> Receiver:
        self.start()
        return self

"""What the simulator actually sent, per request: the yardstick for client measurements.

Times are seconds on the simulator clock's `monotonic()`, the system-wide CLOCK_MONOTONIC
with the real clock, so a client in any process on the machine can compare directly.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field, fields
from typing import Any

MAX_TRUTHS = 10_000


@dataclass
class RequestTruth:
    request_id: str
    profile: str
    fault: str | None
    wire: str
    model: str = ""
    max_tokens: int = 0
    input_tokens: int = 0
    received_at: float = 0.0  # just after the request body was read
    headers_sent_at: float | None = None  # just before the status line was written
    first_token_sent_at: float | None = None  # first chunk with generated text of any kind
    first_answer_token_sent_at: float | None = None
    last_token_sent_at: float | None = None
    finished_at: float | None = None
    output_tokens: int = 0  # every generated token sent, reasoning included
    reasoning_tokens: int = 0
    chunk_sent_at: list[float] = field(default_factory=list)  # one per text-bearing chunk
    chunk_tokens: list[int] = field(default_factory=list)
    model_load_seconds: float | None = None  # Ollama only: load time spent in this request
    status: int = 0
    bytes_sent: int = 0  # response body bytes handed to the socket
    reported_cost: float | None = None  # usage.cost when the profile reports one
    client_disconnected: bool = False  # the client went away before the stream ended

    @property
    def ttft_seconds(self) -> float | None:
        if self.first_token_sent_at is None:
            return None
        return self.first_token_sent_at - self.received_at

    @property
    def output_tokens_per_second(self) -> float | None:
        first, last = self.first_token_sent_at, self.last_token_sent_at
        if self.output_tokens < 2 or first is None or last is None or last <= first:
            return None
        return (self.output_tokens - 1) / (last - first)

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["chunk_sent_at"] = list(self.chunk_sent_at)
        data["chunk_tokens"] = list(self.chunk_tokens)
        data["ttft_seconds"] = self.ttft_seconds
        data["output_tokens_per_second"] = self.output_tokens_per_second
        return data


class TruthLog:
    """The last `limit` truths, by id and in arrival order."""

    def __init__(self, limit: int = MAX_TRUTHS) -> None:
        self._limit = limit
        self._items: OrderedDict[str, RequestTruth] = OrderedDict()

    def add(self, truth: RequestTruth) -> None:
        self._items[truth.request_id] = truth
        while len(self._items) > self._limit:
            self._items.popitem(last=False)

    def get(self, request_id: str) -> RequestTruth | None:
        return self._items.get(request_id)

    def all(self) -> list[RequestTruth]:
        return list(self._items.values())

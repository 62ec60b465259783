"""Compact metric families with a cached text exposition.

prometheus_client keeps a value object and a lock per bucket (~240 bytes a sample) and
formats every sample on every scrape: at 1,000 configured series that is seconds per scrape
and hundreds of MB, and the scrape runs on the loop that timestamps tokens. Here a child
keeps its numbers in one `array` and its rendered lines as `bytes`, re-rendered only after
it changed, so a scrape is mostly a join of cached bytes.

The text is exactly what prometheus_client's `generate_latest` prints for the same data
(without `_created`): `Exposition.collector()` hands the same families to a
`CollectorRegistry`, and the tests compare the two byte for byte.
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Generic, TypeVar

from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

INF = float("inf")
CHUNK_BYTES = 256 * 1024


def _go_float(value: float) -> str:
    """A sample value as Go (and prometheus_client) prints it: 1.0, 1e+06, +Inf."""
    return str(floatToGoString(value))  # type: ignore[no-untyped-call]


def escape_label_value(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _label_string(names: Sequence[str], values: Sequence[str]) -> str:
    """`a="1",b="2"`, sorted by label name as prometheus_client prints them."""
    pairs = sorted(zip(names, values, strict=True))
    return ",".join(f'{n}="{escape_label_value(v)}"' for n, v in pairs)


def _around_le(names: Sequence[str], values: Sequence[str]) -> tuple[str, str]:
    """The label text before and after a histogram bucket's `le="..."`."""
    pairs = sorted(zip(names, values, strict=True))
    before = [f'{n}="{escape_label_value(v)}",' for n, v in pairs if n < "le"]
    after = [f',{n}="{escape_label_value(v)}"' for n, v in pairs if n > "le"]
    return "".join(before) + 'le="', '"' + "".join(after)


class _Child:
    __slots__ = ("family", "labels", "text")

    def __init__(self, family: Any, labels: tuple[str, ...]) -> None:
        self.family = family
        self.labels = labels
        self.text: bytes | None = None  # cached lines; None after a change

    def render(self) -> bytes:
        raise NotImplementedError

    def samples(self) -> Iterator[tuple[str, dict[str, str], float]]:
        raise NotImplementedError


class _ValueChild(_Child):
    __slots__ = ("value",)

    def __init__(self, family: Any, labels: tuple[str, ...]) -> None:
        super().__init__(family, labels)
        self.value = 0.0

    def render(self) -> bytes:
        name = self.family.sample_name
        labels = _label_string(self.family.labelnames, self.labels)
        body = f"{{{labels}}}" if labels else ""
        return f"{name}{body} {_go_float(self.value)}\n".encode()

    def samples(self) -> Iterator[tuple[str, dict[str, str], float]]:
        yield (
            self.family.sample_name,
            dict(zip(self.family.labelnames, self.labels, strict=True)),
            self.value,
        )


class CounterChild(_ValueChild):
    __slots__ = ()

    def inc(self, amount: float = 1.0) -> None:
        if amount < 0:
            raise ValueError("counters can only be incremented by non-negative amounts")
        self.value += amount
        self.text = None


class GaugeChild(_ValueChild):
    __slots__ = ()

    def set(self, value: float) -> None:
        self.value = float(value)
        self.text = None

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount
        self.text = None


class HistogramChild(_Child):
    __slots__ = ("counts", "sum")

    def __init__(self, family: Any, labels: tuple[str, ...]) -> None:
        super().__init__(family, labels)
        self.counts = array("d", [0.0]) * len(family.bounds)  # per bucket, not cumulative
        self.sum = 0.0

    def observe(self, value: float) -> None:
        bounds = self.family.bounds
        self.sum += value
        if not math.isnan(value):  # prometheus_client counts a NaN in no bucket
            self.counts[bisect_left(bounds, value)] += 1.0
        self.text = None

    def _cumulative(self) -> Iterator[float]:
        total = 0.0
        for count in self.counts:
            total += count
            yield total

    def render(self) -> bytes:
        family = self.family
        name = family.name
        before, after = _around_le(family.labelnames, self.labels)
        before = f"{name}_bucket{{{before}"
        after += "} "
        lines = [
            before + le + after + _go_float(total) + "\n"
            for le, total in zip(family.le_labels, self._cumulative(), strict=True)
        ]
        labels = _label_string(family.labelnames, self.labels)
        body = f"{{{labels}}}" if labels else ""
        count = sum(self.counts)
        lines.append(f"{name}_count{body} {_go_float(count)}\n")
        lines.append(f"{name}_sum{body} {_go_float(self.sum)}\n")
        return "".join(lines).encode()

    def samples(self) -> Iterator[tuple[str, dict[str, str], float]]:
        family = self.family
        labels = dict(zip(family.labelnames, self.labels, strict=True))
        total = 0.0
        for le, total in zip(family.le_labels, self._cumulative(), strict=True):
            yield f"{family.name}_bucket", {**labels, "le": le}, total
        yield f"{family.name}_count", labels, total
        yield f"{family.name}_sum", labels, self.sum


_C = TypeVar("_C", bound=_Child)


class Family(Generic[_C]):
    """One metric family: its children by label values, in creation order."""

    kind = ""
    child_type: type[_C]

    def __init__(self, name: str, documentation: str, labelnames: Iterable[str] = ()) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self._children: dict[tuple[str, ...], _C] = {}
        exposed = self.sample_name if self.kind == "counter" else name
        doc = documentation.replace("\\", r"\\").replace("\n", r"\n")
        self._head = f"# HELP {exposed} {doc}\n# TYPE {exposed} {self.kind}\n".encode()
        if not self.labelnames:
            self.labels()  # a family without labels always has its one sample

    @property
    def sample_name(self) -> str:
        return self.name + "_total" if self.kind == "counter" else self.name

    def labels(self, *values: str) -> _C:
        key = tuple(str(v) for v in values)
        child = self._children.get(key)
        if child is None:
            if len(key) != len(self.labelnames):
                raise ValueError(f"{self.name}: expected labels {self.labelnames}, got {key}")
            child = self._children[key] = self.child_type(self, key)
        return child

    def remove_by_labels(self, match: Mapping[str, str]) -> None:
        where = [(self.labelnames.index(n), v) for n, v in match.items()]
        for key in [k for k in self._children if all(k[i] == v for i, v in where)]:
            del self._children[key]

    def texts(self) -> Iterator[bytes]:
        """HELP and TYPE, then each child's lines, rendering those that changed."""
        yield self._head
        # A snapshot: a scrape is sent in chunks, and probes may add children in between.
        for child in list(self._children.values()):
            text = child.text
            if text is None:
                text = child.text = child.render()
            yield text

    def metric(self) -> Metric:
        """The same data as a prometheus_client `Metric` (slow: for tests and tools)."""
        metric = Metric(self.name, self.documentation, self.kind)
        for child in self._children.values():
            for name, labels, value in child.samples():
                metric.add_sample(name, labels, value)
        return metric


class Counter(Family[CounterChild]):
    kind = "counter"
    child_type = CounterChild


class Gauge(Family[GaugeChild]):
    kind = "gauge"
    child_type = GaugeChild

    def set(self, value: float) -> None:
        self.labels().set(value)


class Histogram(Family[HistogramChild]):
    kind = "histogram"
    child_type = HistogramChild

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Iterable[str] = (),
        *,
        buckets: Sequence[float],
    ) -> None:
        bounds = sorted(float(b) for b in buckets)
        if bounds[-1] != INF:
            bounds.append(INF)
        self.bounds = tuple(bounds)
        self.le_labels = tuple(_go_float(b) for b in bounds)
        super().__init__(name, documentation, labelnames)


class Exposition:
    """The families of one exporter, rendered in the order they were added."""

    def __init__(self) -> None:
        self._families: list[Family[Any]] = []

    def add(self, family: _F) -> _F:
        self._families.append(family)
        return family

    def histogram(
        self, name: str, documentation: str, labelnames: Iterable[str], *, buckets: Sequence[float]
    ) -> Histogram:
        return self.add(Histogram(name, documentation, labelnames, buckets=buckets))

    def counter(self, name: str, documentation: str, labelnames: Iterable[str]) -> Counter:
        return self.add(Counter(name, documentation, labelnames))

    def gauge(self, name: str, documentation: str, labelnames: Iterable[str] = ()) -> Gauge:
        return self.add(Gauge(name, documentation, labelnames))

    def chunks(self, size: int = CHUNK_BYTES) -> Iterator[bytes]:
        """The exposition in pieces of about `size` bytes, rendered as they are asked for,
        so a large scrape can be sent without holding the event loop (or a second copy of
        the whole text) at once."""
        batch: list[bytes] = []
        length = 0
        for family in list(self._families):
            for text in family.texts():
                batch.append(text)
                length += len(text)
                if length >= size:
                    yield b"".join(batch)
                    batch, length = [], 0
        if batch:
            yield b"".join(batch)

    def render(self) -> bytes:
        return b"".join(self.chunks())

    def collector(self) -> Collector:
        return _ExpositionCollector(self._families)


_F = TypeVar("_F", bound=Family[Any])


class _ExpositionCollector(Collector):
    def __init__(self, families: list[Family[Any]]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return [family.metric() for family in self._families]

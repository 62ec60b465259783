"""The cached exposition prints exactly what prometheus_client prints for the same writes."""

from __future__ import annotations

import math
import re

import prometheus_client
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from speed_kings.exposition import Counter, Exposition, Gauge, Histogram

BUCKETS = (0.1, 0.5, 1.0, 2.5, 10.0)
LABELS = ("provider", "model", "prompt")
# Hostile label values: quotes, backslashes, newlines, braces, HTML, non-ASCII.
label_values = st.sampled_from(
    ["groq", 'a"b', "back\\slash", "line\nbreak", "{le}", "<script>x</script>", "é☃", ""]
)
label_sets = st.tuples(label_values, label_values, label_values)
values = st.floats(min_value=0, max_value=1e7, allow_nan=False) | st.sampled_from(
    [0.1, 0.5, 10.0, 1e-9, 123456789.0]
)
operations = st.lists(
    st.tuples(st.sampled_from(["observe", "inc", "set", "remove"]), label_sets, values),
    max_size=40,
)


def _ours() -> tuple[Exposition, Histogram, Counter, Gauge, Gauge]:
    exposition = Exposition()
    h = exposition.add(Histogram("t_seconds", "Time\nwith \\ doc.", LABELS, buckets=BUCKETS))
    c = exposition.add(Counter("t_probes", "Probes.", LABELS))
    g = exposition.add(Gauge("t_last", "Last.", LABELS))
    plain = exposition.add(Gauge("t_plain", "No labels."))
    return exposition, h, c, g, plain


def _theirs() -> tuple[CollectorRegistry, object, object, object, object]:
    r = CollectorRegistry()
    h = prometheus_client.Histogram(
        "t_seconds", "Time\nwith \\ doc.", LABELS, buckets=BUCKETS, registry=r
    )
    c = prometheus_client.Counter("t_probes", "Probes.", LABELS, registry=r)
    g = prometheus_client.Gauge("t_last", "Last.", LABELS, registry=r)
    plain = prometheus_client.Gauge("t_plain", "No labels.", registry=r)
    return r, h, c, g, plain


def _without_created(text: bytes) -> bytes:
    """prometheus_client adds `_created` samples unless disabled process-wide; ours never."""
    return re.sub(
        rb"# HELP \w+_created .*\n# TYPE \w+_created gauge\n(\w+_created.*\n)*", b"", text
    )


def _apply(families: tuple[object, ...], ops: list[tuple[str, tuple[str, ...], float]]) -> None:
    h, c, g, plain = families
    for op, labels, value in ops:
        if op == "observe":
            h.labels(*labels).observe(value)  # type: ignore[attr-defined]
        elif op == "inc":
            c.labels(*labels).inc(value)  # type: ignore[attr-defined]
        elif op == "set":
            g.labels(*labels).set(value)  # type: ignore[attr-defined]
            plain.set(value)  # type: ignore[attr-defined]
        else:
            for family in (h, c, g):
                family.remove_by_labels(dict(zip(LABELS, labels, strict=True)))  # type: ignore[attr-defined]


@settings(max_examples=200, deadline=None)
@given(first=operations, second=operations)
def test_text_matches_prometheus_client_after_any_writes(
    first: list[tuple[str, tuple[str, ...], float]],
    second: list[tuple[str, tuple[str, ...], float]],
) -> None:
    exposition, *ours = _ours()
    registry, *theirs = _theirs()
    _apply(tuple(ours), first)
    _apply(tuple(theirs), first)
    assert exposition.render() == _without_created(generate_latest(registry))
    # A second round of writes on top of cached text: only what changed is re-rendered,
    # and the result must still be exact.
    _apply(tuple(ours), second)
    _apply(tuple(theirs), second)
    assert exposition.render() == _without_created(generate_latest(registry))


def test_collector_hands_the_registry_the_same_text() -> None:
    exposition, h, c, g, _ = _ours()
    h.labels("groq", "m", "short").observe(0.3)
    c.labels("groq", "m", "short").inc()
    g.labels('x"', "m\n", "p\\").set(2.5)
    registry = CollectorRegistry()
    registry.register(exposition.collector())
    assert exposition.render() == generate_latest(registry)
    assert (
        registry.get_sample_value(
            "t_seconds_bucket", {"provider": "groq", "model": "m", "prompt": "short", "le": "0.5"}
        )
        == 1.0
    )
    assert (
        registry.get_sample_value("t_last", {"provider": 'x"', "model": "m\n", "prompt": "p\\"})
        == 2.5
    )


def test_cached_text_follows_every_change() -> None:
    exposition, h, c, _, plain = _ours()
    child = h.labels("groq", "m", "short")
    before = exposition.render()
    assert exposition.render() is not before and exposition.render() == before
    child.observe(0.3)
    plain.set(7)
    c.labels("groq", "m", "short").inc(2)
    text = exposition.render().decode()
    parsed = {f.name: f for f in text_string_to_metric_families(text)}
    samples = {(s.name, s.labels.get("le")): s.value for s in parsed["t_seconds"].samples}
    assert samples[("t_seconds_bucket", "0.1")] == 0
    assert samples[("t_seconds_bucket", "0.5")] == 1
    assert samples[("t_seconds_bucket", "+Inf")] == 1
    assert samples[("t_seconds_sum", None)] == pytest.approx(0.3)
    assert parsed["t_plain"].samples[0].value == 7
    assert parsed["t_probes"].samples[0].value == 2
    h.remove_by_labels({"provider": "groq"})
    assert "t_seconds_bucket" not in exposition.render().decode()


def test_bounds_and_bad_writes() -> None:
    _, h, c, _, _ = _ours()
    assert h.le_labels == ("0.1", "0.5", "1.0", "2.5", "10.0", "+Inf")
    with pytest.raises(ValueError, match="non-negative"):
        c.labels("a", "b", "c").inc(-1)
    with pytest.raises(ValueError, match="expected labels"):
        c.labels("a", "b")
    child = h.labels("a", "b", "c")
    child.observe(math.inf)
    assert child.counts[-1] == 1.0  # +Inf lands in the last bucket, as in prometheus_client

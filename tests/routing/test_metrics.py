"""The hot path's plain-int metrics expose exactly what prometheus_client's own types would."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram

from numberplane.routing import metrics

_LABELS = itertools.count()


def _samples(registry: CollectorRegistry, name: str, labels: dict[str, str]) -> dict[tuple[str, str], float]:
    out = {}
    for family in registry.collect():
        for sample in family.samples:
            if sample.name.startswith(name) and all(sample.labels.get(k) == v for k, v in labels.items()):
                if sample.name.endswith(("_bucket", "_count", "_sum")):
                    out[(sample.name.rsplit("_", 1)[1], sample.labels.get("le", ""))] = sample.value
    return out


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=30, allow_nan=False), max_size=40))
def test_decision_latency_matches_a_prometheus_histogram(values: list[float]) -> None:
    carrier = f"test-{next(_LABELS)}"  # a label no other example or test writes
    reference_registry = CollectorRegistry()
    reference = Histogram(
        "numberplane_route_decision_seconds",
        "reference",
        ["carrier"],
        buckets=metrics.DECISION_BUCKETS,
        registry=reference_registry,
    )
    for value in values:
        metrics.decision("agent", carrier, value)
        reference.labels(carrier).observe(value)
    ours = _samples(metrics.REGISTRY, "numberplane_route_decision_seconds", {"carrier": carrier})
    theirs = _samples(reference_registry, "numberplane_route_decision_seconds", {"carrier": carrier})
    if not values:
        assert ours == {}  # a carrier never seen has no series yet
        return
    assert ours.keys() == theirs.keys()
    for key, value in theirs.items():
        assert abs(ours[key] - value) < 1e-9, key


def test_decisions_and_cache_lookups_are_counted() -> None:
    def counted(name: str, labels: dict[str, str]) -> float:
        for family in metrics.REGISTRY.collect():
            for sample in family.samples:
                if sample.name == name and sample.labels == labels:
                    return sample.value
        return 0.0

    before = counted("numberplane_route_decisions_total", {"outcome": "rejected", "carrier": "test-count"})
    hits = counted("numberplane_route_cache_lookups_total", {"result": "hit"})
    metrics.decision("rejected", "test-count", 0.001)
    metrics.decision("rejected", "test-count", 0.002)
    metrics.cache_lookup("hit")
    assert (
        counted("numberplane_route_decisions_total", {"outcome": "rejected", "carrier": "test-count"})
        == before + 2
    )
    assert counted("numberplane_route_cache_lookups_total", {"result": "hit"}) == hits + 1

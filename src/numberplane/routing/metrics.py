"""Prometheus metrics of the data plane (served at ``GET /metrics``).

Each server process has its own registry; scrape every process (or run one per host).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from itertools import accumulate

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Metric
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

REGISTRY = CollectorRegistry(auto_describe=True)

WEBHOOK_FAILURES = Counter(
    "numberplane_route_webhook_failures",
    "Inbound webhooks that failed (routing carried on without them), by reason.",
    ["reason"],
    registry=REGISTRY,
)
WEBHOOK_LATENCY = Histogram(
    "numberplane_route_webhook_seconds",
    "Time spent asking inbound webhooks (all attempts).",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 15, 30),
    registry=REGISTRY,
)
SIGNATURE_FAILURES = Counter(
    "numberplane_route_signature_failures",
    "Carrier requests refused with 403 because they could not be verified.",
    ["carrier"],
    registry=REGISTRY,
)
CACHE_SIZE = Gauge("numberplane_route_cache_entries", "Numbers in the route cache.", registry=REGISTRY)
STATUS_CALLBACKS = Counter(
    "numberplane_call_status_callbacks",
    "Verified call-status callbacks received, by carrier and call status.",
    ["carrier", "status"],
    registry=REGISTRY,
)
CALL_RECORDS_PENDING = Gauge(
    "numberplane_call_records_pending",
    "Call observations waiting to be written (the write-behind queue).",
    registry=REGISTRY,
)
CALL_RECORDS_DROPPED = Gauge(
    "numberplane_call_records_dropped",
    "Call observations dropped since the process started (queue full, or a batch the database refused).",
    registry=REGISTRY,
)

# -- The hot path: counted in plain ints, turned into Prometheus families when scraped ----------
#
# Every routing answer counts a cache lookup and a decision and observes its latency. Through
# prometheus_client's Counter and Histogram that is three lock acquisitions and a bucket scan per
# call (~5 us of a ~60 us answer); here it is two dict updates and a bisect. Only the event loop's
# thread writes these, and a scrape reads them between two of its steps.

DECISION_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15)
_BOUNDS = (*(floatToGoString(b) for b in DECISION_BUCKETS), "+Inf")
_cache_lookups = {"hit": 0, "miss": 0, "bypass": 0}
_decisions: dict[tuple[str, str], int] = {}
# carrier -> [count per bucket (the last: above every bound)..., sum of seconds]
_latency: dict[str, list[float]] = {}


def cache_lookup(result: str) -> None:
    _cache_lookups[result] += 1


def decision(outcome: str, carrier: str, seconds: float) -> None:
    """Count one decision and observe its latency."""
    key = (outcome, carrier)
    _decisions[key] = _decisions.get(key, 0) + 1
    observed = _latency.get(carrier)
    if observed is None:
        observed = _latency[carrier] = [0] * (len(DECISION_BUCKETS) + 2)
    observed[bisect_left(DECISION_BUCKETS, seconds)] += 1
    observed[-1] += seconds


class _HotPath(Collector):
    """The hot path's counts as the families a Counter and a Histogram would expose."""

    def collect(self) -> Iterator[Metric]:
        lookups = CounterMetricFamily(
            "numberplane_route_cache_lookups",
            "Route-snapshot lookups by result (hit, miss, bypass).",
            labels=["result"],
        )
        for result, count in list(_cache_lookups.items()):
            lookups.add_metric([result], count)
        yield lookups
        decisions = CounterMetricFamily(
            "numberplane_route_decisions",
            "Routing decisions by outcome and by the surface that asked.",
            labels=["outcome", "carrier"],
        )
        for (outcome, carrier), count in list(_decisions.items()):
            decisions.add_metric([outcome, carrier], count)
        yield decisions
        latency = HistogramMetricFamily(
            "numberplane_route_decision_seconds",
            "Time to answer a routing request (lookup, webhook if any, decision and rendering).",
            labels=["carrier"],
        )
        for carrier, observed in list(_latency.items()):
            counts = observed[:-1]
            cumulative = list(accumulate(counts))
            latency.add_metric([carrier], list(zip(_BOUNDS, cumulative, strict=True)), sum_value=observed[-1])
        yield latency


REGISTRY.register(_HotPath())

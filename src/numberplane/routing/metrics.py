"""Prometheus metrics of the data plane (served at ``GET /metrics``).

Each server process has its own registry; scrape every process (or run one per host).
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

DECISIONS = Counter(
    "numberplane_route_decisions",
    "Routing decisions by outcome and by the surface that asked.",
    ["outcome", "carrier"],
    registry=REGISTRY,
)
DECISION_LATENCY = Histogram(
    "numberplane_route_decision_seconds",
    "Time to answer a routing request (lookup, webhook if any, decision and rendering).",
    ["carrier"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15),
    registry=REGISTRY,
)
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
CACHE_LOOKUPS = Counter(
    "numberplane_route_cache_lookups",
    "Route-snapshot lookups by result (hit, miss, bypass).",
    ["result"],
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

# Pre-bound children for the hot path (label lookups cost more than the increment).
_cache_hit = CACHE_LOOKUPS.labels("hit")
_cache_miss = CACHE_LOOKUPS.labels("miss")
_cache_bypass = CACHE_LOOKUPS.labels("bypass")


_CACHE_CHILDREN = {"hit": _cache_hit, "miss": _cache_miss, "bypass": _cache_bypass}
_decision_children: dict[tuple[str, str], Any] = {}
_latency_children: dict[str, Any] = {}


def cache_lookup(result: str) -> None:
    _CACHE_CHILDREN[result].inc()


def decision(outcome: str, carrier: str, seconds: float) -> None:
    """Count one decision and observe its latency (label children bound once)."""
    counter = _decision_children.get((outcome, carrier))
    if counter is None:
        counter = _decision_children[(outcome, carrier)] = DECISIONS.labels(outcome, carrier)
    histogram = _latency_children.get(carrier)
    if histogram is None:
        histogram = _latency_children[carrier] = DECISION_LATENCY.labels(carrier)
    counter.inc()
    histogram.observe(seconds)

"""Prometheus metrics (SPEC §3 Operations), one registry for the process."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

OPEN_CONNECTIONS = Gauge(
    "chatapi_open_connections", "Open real-time connections", ["protocol"], registry=REGISTRY)
ROOMS_WITH_LISTENERS = Gauge(
    "chatapi_rooms_with_listeners", "Rooms with at least one live connection on this node",
    registry=REGISTRY)
MESSAGES_STORED = Counter(
    "chatapi_messages_stored_total", "Messages stored (not counting idempotent retries)",
    registry=REGISTRY)
EVENTS_DELIVERED = Counter(
    "chatapi_events_delivered_total", "Events written to connections", ["protocol"],
    registry=REGISTRY)
DELIVERY_LATENCY = Histogram(
    "chatapi_delivery_latency_seconds", "Time from publish to the last local write of an event",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
    registry=REGISTRY)
REJECTED_CONNECTIONS = Counter(
    "chatapi_rejected_connections_total", "Connections closed by the server, by close code",
    ["code"], registry=REGISTRY)
HTTP_REQUESTS = Counter(
    "chatapi_http_requests_total", "REST requests by status", ["status"], registry=REGISTRY)

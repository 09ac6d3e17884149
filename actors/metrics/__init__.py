"""Prometheus metrics: counters the actors feed, gauges read on scrape, the HTTP server."""

from actors.metrics.registry import Metrics
from actors.metrics.server import MetricsServer, parse_address

__all__ = ["Metrics", "MetricsServer", "parse_address"]

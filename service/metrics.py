"""Prometheus /metrics, read from the store at scrape time (so every process and host agrees)."""

from __future__ import annotations

from collections.abc import Iterator

from flask import Blueprint, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from service.core import Core, core
from worker.jobs.model import JUDGE0_STATUSES
from worker.jobs.store import INTERNAL_ERROR, LATENCY_BUCKETS_S

bp = Blueprint("metrics", __name__)


class StoreCollector(Collector):
    def __init__(self, c: Core) -> None:
        self.core = c

    def collect(self) -> Iterator[Metric]:
        store = self.core.store
        yield GaugeMetricFamily(
            "stockade_queue_depth", "Submissions In Queue", value=store.queue_depth()
        )
        yield GaugeMetricFamily(
            "stockade_processing", "Submissions being judged", value=store.running()
        )
        counts = store.counts()
        by_status = GaugeMetricFamily(
            "stockade_submissions_total",
            "Submissions that reached each final status (a counter kept in Redis)",
            labels=["status_id", "status"],
        )
        for i, name in JUDGE0_STATUSES.items():
            if i > 2:
                by_status.add_metric([str(i), name], counts.get(i, 0))
        yield by_status
        yield GaugeMetricFamily(
            "stockade_box_failures_total",
            "Submissions that ended as Internal Error (box or worker failures)",
            value=counts.get(INTERNAL_ERROR, 0),
        )
        yield GaugeMetricFamily(
            "stockade_languages_disabled",
            "Languages switched off because their self-test failed",
            value=len(store.disabled_languages()),
        )
        for name, raw in store.histograms().items():
            buckets, total = [], 0.0
            for bound in LATENCY_BUCKETS_S:
                total += raw.get(repr(bound), raw.get(f"{bound:g}", 0.0))
                buckets.append((f"{bound:g}", total))
            buckets.append(("+Inf", raw.get("count", 0.0)))
            yield HistogramMetricFamily(
                f"stockade_{name}_seconds",
                f"Latency: {name.replace('_', ' ')} (seconds)",
                buckets=buckets,
                sum_value=raw.get("sum", 0.0),
            )


@bp.get("/metrics")
def metrics() -> Response:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(core()))
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)

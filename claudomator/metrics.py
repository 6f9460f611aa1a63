"""`GET /metrics`: Prometheus text (prometheus-client), read from the database at scrape time, plus
the counters only this process knows (WebSocket clients, webhook deliveries).

The store is the truth, so nothing here is counted twice or lost on restart: tasks by state,
executions and their durations, cost and tokens come from the tables; the pool from `status()`.
Every series the README lists is there from the first scrape, at 0 until something happens
(every execution state, every notification result, with no `[[notify]]` too), so a query or an
alert never meets a missing series.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from claudomator.records import Status
from claudomator.state import FINAL_STATES, State
from claudomator.store.reader import Reader

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4  # the text format every Prometheus reads
# as a response's media type: Litestar adds the charset to a text/* type itself
MEDIA_TYPE = CONTENT_TYPE.replace("; charset=utf-8", "")
DURATION_BUCKETS_S = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200)
EXECUTION_STATES = tuple(s.value for s in State if s is State.RUNNING or s in FINAL_STATES)
NOTIFY_RESULTS = ("sent", "failed", "dropped")  # the notifier's `stats`

Overview = Callable[[], Status]  # the service's status view


class Metrics:
    """One registry per app: the store's figures at scrape time and this process's counters."""

    def __init__(
        self,
        database: Path | str,
        status: Overview,
        notify_stats: Callable[[], dict[str, int]] | None = None,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(_StoreCollector(database, status))
        ProcessCollector(registry=self.registry)
        self.ws_clients = Gauge(
            "claudomator_websocket_clients",
            "WebSocket clients connected",
            registry=self.registry,
        )
        self.ws_dropped = Counter(
            "claudomator_websocket_dropped",
            "WebSocket clients disconnected for falling too far behind",
            registry=self.registry,
        )
        self.registry.register(_NotifyCollector(notify_stats or dict))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _StoreCollector(Collector):
    def __init__(self, database: Path | str, status: Overview) -> None:
        self.database = database  # the SQLite file or the PostgreSQL URL
        self.status = status

    def describe(self) -> Iterator[Metric]:
        return iter(())  # figures come from the database at scrape time

    def collect(self) -> Iterator[Metric]:
        status = self.status()
        tasks = GaugeMetricFamily("claudomator_tasks", "Tasks by state", labels=["state"])
        for state, count in status["counts"].items():
            tasks.add_metric([state], count)
        yield tasks

        executions = CounterMetricFamily(
            "claudomator_executions", "Executions by state", labels=["state"]
        )
        cost = CounterMetricFamily("claudomator_cost_usd", "Money spent, as claude reported it")
        tokens = CounterMetricFamily("claudomator_tokens", "Tokens used", labels=["kind"])
        with closing(Reader(self.database)) as reader:  # its own connection, per scrape
            by_state = reader.execution_totals()
            durations = reader.durations(DURATION_BUCKETS_S)
            queued, oldest = reader.queue()
        totals = [0.0] * 5
        counts = dict.fromkeys(EXECUTION_STATES, 0)
        for state, count, *sums in by_state:
            counts[state] = count
            totals = [t + float(s) for t, s in zip(totals, sums, strict=True)]
        for state, count in counts.items():
            executions.add_metric([state], count)
        cost.add_metric([], totals[0])
        for kind, value in zip(
            ("input", "output", "cache_read", "cache_creation"), totals[1:], strict=True
        ):
            tokens.add_metric([kind], value)
        yield executions
        yield cost
        yield tokens

        count, total, *cumulative = durations
        buckets = [(str(float(b)), c) for b, c in zip(DURATION_BUCKETS_S, cumulative, strict=True)]
        yield HistogramMetricFamily(
            "claudomator_execution_duration_seconds",
            "How long finished executions ran",
            buckets=[*buckets, ("+Inf", count)],
            sum_value=total,
        )

        pool = status["pool"]
        for name, doc, value in (
            ("claudomator_queue_depth", "Tasks QUEUED", queued),
            (
                "claudomator_queue_oldest_age_seconds",
                "How long the oldest QUEUED task has waited (0 when none)",
                max(0.0, time.time() - oldest) if oldest else 0.0,
            ),
            ("claudomator_pool_slots", "Executions that may run at once", pool["slots"]),
            ("claudomator_pool_busy", "Executions running", pool["busy"]),
            ("claudomator_pool_paused", "1 when no new task starts", int(pool["paused"])),
            ("claudomator_pool_draining", "1 while draining", int(pool["draining"])),
            ("claudomator_cost_today_usd", "Spent today (local day)", status["cost_today_usd"]),
            (
                "claudomator_daily_budget_usd",
                "budget.daily_usd (0 = no limit)",
                status["daily_budget_usd"] or 0,
            ),
        ):
            yield GaugeMetricFamily(name, doc, value=value)


class _NotifyCollector(Collector):
    def __init__(self, stats: Callable[[], dict[str, int]]) -> None:
        self.stats = stats

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "claudomator_notifications", "Webhook deliveries by result", labels=["result"]
        )
        for result, count in {**dict.fromkeys(NOTIFY_RESULTS, 0), **self.stats()}.items():
            family.add_metric([result], count)
        yield family

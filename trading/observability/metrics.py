"""Service metrics that add up across processes and hosts.

A service runs as many worker processes on many hosts, while its ``/services/<name>/metrics``
page is served by the web process. So worker-side metrics are not kept in process memory:
each sample lives in one Redis hash per service, ``<prefix>:metrics:<service>``, updated with
atomic ``HINCRBYFLOAT`` (counters, histogram buckets) or ``HSET`` (gauges that describe shared
state). The web process reads the hash and renders it with prometheus_client's exposition.

Counters survive worker restarts (Prometheus sees a monotonic series); only a Redis flush resets
them, which ``rate()`` handles like any counter reset.

Every declared metric is on the page from the first scrape, as prometheus_client exports a metric
it created: an unlabelled one at 0 until it moves, a labelled one with a 0 series for each label
value declared as known (an enum's members, or a function of the settings), so that ``rate()``
and ``increase()`` see the first event instead of a series appearing with it. Values a recorder
passes beyond the known ones are stored and rendered all the same.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import Enum, StrEnum

import redis
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from trading.observability.services import SERVICES
from trading.store import redis_client, rkey

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Kind(StrEnum):
    COUNTER = "counter"
    GAUGE = "gauge"
    HISTOGRAM = "histogram"


# The values a label is known to take: an enum class, a collection, or a function returning one
# (read at every scrape, for values that follow the settings).
LabelValues = type[Enum] | Iterable[object] | Callable[[], Iterable[object]]
# A metric's labels: their names, or a mapping of each name to its known values (None: open).
Labels = Iterable[str] | Mapping[str, LabelValues | None]


def _label_value(value: object) -> str:
    return str(value.value) if isinstance(value, Enum) else str(value)


@dataclass(frozen=True)
class MetricSpec:
    service: str
    name: str
    kind: Kind
    documentation: str
    labelnames: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()
    # (label name, its known values) for the labels whose values are known
    known: tuple[tuple[str, tuple[str, ...] | Callable[[], Iterable[object]]], ...] = ()

    def initial_label_sets(self) -> list[tuple[str, ...]]:
        """The label values shown at 0 before anything is recorded: the empty set for an
        unlabelled metric, every combination of the known values when all labels have them,
        else none."""
        known = dict(self.known)
        if not set(self.labelnames) <= set(known):
            return []
        columns = []
        for name in self.labelnames:
            values = known[name]
            values = values() if callable(values) else values
            columns.append(list(dict.fromkeys(_label_value(v) for v in values)))
        return list(itertools.product(*columns))


def _split_labels(labels: Labels) -> tuple[tuple[str, ...], tuple]:
    """Label names, and the known values of those that have them, as ``MetricSpec`` keeps them."""
    if not isinstance(labels, Mapping):
        return tuple(labels), ()
    known = []
    for name, values in labels.items():
        if values is None:
            continue
        if isinstance(values, type) and issubclass(values, Enum):
            values = tuple(_label_value(member) for member in values)
        elif not callable(values):
            values = tuple(_label_value(v) for v in values)
        known.append((name, values))
    return tuple(labels), tuple(known)


# Declared metrics per service, in declaration order: what the metrics page renders.
_SPECS: dict[str, dict[str, MetricSpec]] = {name: {} for name in SERVICES}


def _field(name: str, part: str, labels: Iterable[str]) -> str:
    return json.dumps([name, part, list(labels)], separators=(",", ":"))


class ServiceMetric:
    """One declared metric of one service; the recording side, usable from any process."""

    def __init__(self, spec: MetricSpec) -> None:
        self.spec = spec

    def _labels(self, labels: Mapping[str, object]) -> list[str]:
        if set(labels) != set(self.spec.labelnames):
            raise ValueError(
                f"{self.spec.name} takes labels {self.spec.labelnames}, got {tuple(labels)}"
            )
        return [str(labels[n]) for n in self.spec.labelnames]

    def _key(self) -> str:
        return rkey("metrics", self.spec.service)

    def inc(self, amount: float = 1.0, *, client: redis.Redis | None = None, **labels) -> None:
        if self.spec.kind is not Kind.COUNTER:
            raise TypeError(f"{self.spec.name} is a {self.spec.kind}, not a counter")
        if amount < 0:
            raise ValueError("counters only go up")
        field = _field(self.spec.name, "", self._labels(labels))
        (client or redis_client()).hincrbyfloat(self._key(), field, amount)

    def set(self, value: float, *, client: redis.Redis | None = None, **labels) -> None:
        if self.spec.kind is not Kind.GAUGE:
            raise TypeError(f"{self.spec.name} is a {self.spec.kind}, not a gauge")
        field = _field(self.spec.name, "", self._labels(labels))
        (client or redis_client()).hset(self._key(), field, repr(float(value)))

    def observe(self, value: float, *, client: redis.Redis | None = None, **labels) -> None:
        if self.spec.kind is not Kind.HISTOGRAM:
            raise TypeError(f"{self.spec.name} is a {self.spec.kind}, not a histogram")
        values = self._labels(labels)
        # Store the one bucket the value falls in; rendering accumulates them.
        bucket = next(
            (i for i, bound in enumerate(self.spec.buckets) if value <= bound),
            len(self.spec.buckets),
        )
        client = client or redis_client()
        # Queued on the caller's pipeline when given one, sent with the rest of its commands.
        given = isinstance(client, redis.client.Pipeline)
        pipe = client if given else client.pipeline(transaction=False)
        key = self._key()
        pipe.hincrbyfloat(key, _field(self.spec.name, f"b{bucket}", values), 1)
        pipe.hincrbyfloat(key, _field(self.spec.name, "sum", values), value)
        if not given:
            pipe.execute()


def declare(
    service: str,
    name: str,
    kind: Kind,
    documentation: str,
    labels: Labels = (),
    buckets: Iterable[float] = LATENCY_BUCKETS,
) -> ServiceMetric:
    """Declares a metric of a service; the name must carry the service's spec prefix. ``labels``
    names the labels, or maps each to the values it is known to take (an enum: its members), which
    the page then shows at 0 until they are recorded."""
    prefix = SERVICES[service].metric_prefix
    if not name.startswith(prefix + "_"):
        raise ValueError(f"{name} must start with {prefix}_")
    if kind is Kind.COUNTER and not name.endswith("_total"):
        raise ValueError(f"counter {name} must end with _total")
    labelnames, known = _split_labels(labels)
    spec = MetricSpec(
        service=service,
        name=name,
        kind=kind,
        documentation=documentation,
        labelnames=labelnames,
        buckets=tuple(sorted(buckets)) if kind is Kind.HISTOGRAM else (),
        known=known,
    )
    existing = _SPECS[service].get(name)
    if existing is not None and existing != spec:
        raise ValueError(f"{name} is already declared differently")
    _SPECS[service][name] = spec
    return ServiceMetric(spec)


def declare_for_each_service(
    suffix: str, kind: Kind, documentation: str, labels: Labels = ()
) -> dict[str, ServiceMetric]:
    """The same metric for every service, under each service's own prefix."""
    labels = labels if isinstance(labels, Mapping) else tuple(labels)
    return {
        service.name: declare(
            service.name, f"{service.metric_prefix}_{suffix}", kind, documentation, labels
        )
        for service in SERVICES.values()
    }


# Families computed when the page is scraped, from shared state (the database): values that
# describe the book rather than a process, so every host agrees on them.
ScrapeCollector = Callable[[], Iterable[Metric]]
_SCRAPE_COLLECTORS: dict[str, list[ScrapeCollector]] = {name: [] for name in SERVICES}


def scrape_collector(service: str) -> Callable[[ScrapeCollector], ScrapeCollector]:
    """Registers a function whose families are added to the service's metrics page."""

    def register(collector: ScrapeCollector) -> ScrapeCollector:
        if collector not in _SCRAPE_COLLECTORS[service]:
            _SCRAPE_COLLECTORS[service].append(collector)
        return collector

    return register


def scrape_collectors(service: str) -> list[ScrapeCollector]:
    return list(_SCRAPE_COLLECTORS[service])


def declared(service: str) -> list[MetricSpec]:
    return list(_SPECS[service].values())


def read_samples(client: redis.Redis, service: str) -> dict[str, float]:
    return {
        field: float(value) for field, value in client.hgetall(rkey("metrics", service)).items()
    }


def build_families(specs: Iterable[MetricSpec], samples: Mapping[str, float]) -> list[Metric]:
    """Turns the stored samples into metric families: every declared metric, with a series for
    each label set stored or known (at 0 when nothing was recorded for it)."""
    by_metric: dict[str, dict[tuple[str, ...], dict[str, float]]] = {}
    for field, value in samples.items():
        try:
            name, part, labels = json.loads(field)
        except (ValueError, TypeError):
            continue
        by_metric.setdefault(name, {}).setdefault(tuple(labels), {})[part] = value

    families: list[Metric] = []
    for spec in specs:
        series = by_metric.get(spec.name, {})
        for labels in spec.initial_label_sets():
            series.setdefault(labels, {})
        labelnames = list(spec.labelnames)
        if spec.kind is Kind.COUNTER:
            family = CounterMetricFamily(
                spec.name.removesuffix("_total"), spec.documentation, labels=labelnames
            )
            for labels, parts in sorted(series.items()):
                family.add_metric(list(labels), parts.get("", 0.0))
        elif spec.kind is Kind.GAUGE:
            family = GaugeMetricFamily(spec.name, spec.documentation, labels=labelnames)
            for labels, parts in sorted(series.items()):
                family.add_metric(list(labels), parts.get("", 0.0))
        else:
            family = HistogramMetricFamily(spec.name, spec.documentation, labels=labelnames)
            for labels, parts in sorted(series.items()):
                cumulative, buckets = 0.0, []
                for i, bound in enumerate((*spec.buckets, math.inf)):
                    cumulative += parts.get(f"b{i}", 0.0)
                    buckets.append(("+Inf" if bound == math.inf else repr(bound), cumulative))
                family.add_metric(list(labels), buckets, sum_value=parts.get("sum", 0.0))
        families.append(family)
    return families


class _Families:
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> list[Metric]:
        return self.families


def render(families: list[Metric]) -> bytes:
    """Prometheus text exposition of the given families, in order."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(families))
    return generate_latest(registry)

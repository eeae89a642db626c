from enum import StrEnum

import pytest
from prometheus_client.parser import text_string_to_metric_families

from trading.execution.metrics import ORDERS_DENIED
from trading.observability.metrics import (
    Kind,
    MetricSpec,
    ServiceMetric,
    _field,
    _split_labels,
    build_families,
    declare,
    render,
)
from trading.risk.reasons import Reason

COUNTER = MetricSpec("ai", "ai_service_things_total", Kind.COUNTER, "Things", ("kind",))
PLAIN_COUNTER = MetricSpec("ai", "ai_service_signals_total", Kind.COUNTER, "Signals")
GAUGE = MetricSpec("ai", "ai_service_level", Kind.GAUGE, "Level")
HISTOGRAM = MetricSpec(
    "ai", "ai_service_latency_seconds", Kind.HISTOGRAM, "Latency", ("task",), (0.1, 1.0)
)


def parse(text: bytes) -> dict[str, float]:
    samples = {}
    for family in text_string_to_metric_families(text.decode()):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}"] = sample.value
    return samples


def test_stored_samples_render_as_valid_prometheus_text():
    stored = {
        _field("ai_service_things_total", "", ["a"]): 3.0,
        _field("ai_service_things_total", "", ["b"]): 4.0,
        _field("ai_service_level", "", []): 7.5,
        # 2 observations <= 0.1, 1 in (0.1, 1.0], 1 above 1.0
        _field("ai_service_latency_seconds", "b0", ["t"]): 2.0,
        _field("ai_service_latency_seconds", "b1", ["t"]): 1.0,
        _field("ai_service_latency_seconds", "b2", ["t"]): 1.0,
        _field("ai_service_latency_seconds", "sum", ["t"]): 3.25,
    }
    samples = parse(render(build_families([COUNTER, GAUGE, HISTOGRAM], stored)))
    assert samples["ai_service_things_total{kind=a}"] == 3
    assert samples["ai_service_things_total{kind=b}"] == 4
    assert samples["ai_service_level{}"] == 7.5
    assert samples["ai_service_latency_seconds_bucket{le=0.1,task=t}"] == 2
    assert samples["ai_service_latency_seconds_bucket{le=1.0,task=t}"] == 3
    assert samples["ai_service_latency_seconds_bucket{le=+Inf,task=t}"] == 4
    assert samples["ai_service_latency_seconds_count{task=t}"] == 4
    assert samples["ai_service_latency_seconds_sum{task=t}"] == 3.25


def test_an_unlabelled_counter_is_exported_as_zero_before_its_first_increment():
    samples = parse(render(build_families([PLAIN_COUNTER], {})))
    assert samples == {"ai_service_signals_total{}": 0.0}


def test_samples_of_undeclared_metrics_and_garbage_fields_are_ignored():
    stored = {_field("ai_service_gone_total", "", []): 1.0, "not json": 2.0}
    assert parse(render(build_families([GAUGE], stored))) == {"ai_service_level{}": 0.0}


def test_unlabelled_gauges_and_histograms_are_exported_as_zero_before_anything_is_recorded():
    latency = MetricSpec(
        "ai", "ai_service_wait_seconds", Kind.HISTOGRAM, "Wait", buckets=(0.1, 1.0)
    )
    assert parse(render(build_families([GAUGE, latency], {}))) == {
        "ai_service_level{}": 0.0,
        "ai_service_wait_seconds_bucket{le=0.1}": 0.0,
        "ai_service_wait_seconds_bucket{le=1.0}": 0.0,
        "ai_service_wait_seconds_bucket{le=+Inf}": 0.0,
        "ai_service_wait_seconds_count{}": 0.0,
        "ai_service_wait_seconds_sum{}": 0.0,
    }


class Colour(StrEnum):
    RED = "red"
    GREEN = "green"


def spec_with(labels, name="ai_service_paints_total") -> MetricSpec:
    labelnames, known = _split_labels(labels)
    return MetricSpec("ai", name, Kind.COUNTER, "Paints", labelnames, known=known)


def test_a_labelled_counter_shows_each_known_value_at_zero_before_its_first_increment():
    samples = parse(render(build_families([spec_with({"colour": Colour})], {})))
    assert samples == {
        "ai_service_paints_total{colour=red}": 0.0,
        "ai_service_paints_total{colour=green}": 0.0,
    }


def test_every_denial_reason_is_on_the_page_at_zero_before_any_denial():
    samples = parse(render(build_families([ORDERS_DENIED.spec], {})))
    assert samples == {
        f"exec_risk_service_orders_denied_total{{reason={reason}}}": 0.0 for reason in Reason
    }


def test_recorded_values_sit_beside_the_known_ones_still_at_zero():
    spec = spec_with({"colour": Colour, "size": ("s", "m")})
    stored = {
        _field(spec.name, "", ["red", "m"]): 2.0,
        _field(spec.name, "", ["blue", "s"]): 1.0,  # a value beyond the known ones
    }
    samples = parse(render(build_families([spec], stored)))
    assert samples == {
        "ai_service_paints_total{colour=red,size=s}": 0.0,
        "ai_service_paints_total{colour=red,size=m}": 2.0,
        "ai_service_paints_total{colour=green,size=s}": 0.0,
        "ai_service_paints_total{colour=green,size=m}": 0.0,
        "ai_service_paints_total{colour=blue,size=s}": 1.0,
    }


def test_known_values_given_by_a_function_are_read_at_each_scrape():
    symbols = ["BTCUSDT"]
    spec = spec_with({"symbol": lambda: symbols})
    assert set(parse(render(build_families([spec], {})))) == {
        "ai_service_paints_total{symbol=BTCUSDT}"
    }
    symbols.append("ETHUSDT")
    assert set(parse(render(build_families([spec], {})))) == {
        "ai_service_paints_total{symbol=BTCUSDT}",
        "ai_service_paints_total{symbol=ETHUSDT}",
    }


def test_a_label_with_open_values_keeps_its_metric_bare_until_something_is_recorded():
    spec = spec_with({"colour": Colour, "task": None})
    text = render(build_families([spec], {})).decode()
    assert parse(text.encode()) == {}
    assert "# TYPE ai_service_paints_total counter" in text


def test_declaring_checks_prefix_and_counter_suffix():
    with pytest.raises(ValueError, match="must start with exec_risk_service_"):
        declare("exec-risk", "ai_service_orders_total", Kind.COUNTER, "Orders")
    with pytest.raises(ValueError, match="must end with _total"):
        declare("ai", "ai_service_orders", Kind.COUNTER, "Orders")


def test_recording_with_the_wrong_labels_is_refused():
    metric = ServiceMetric(COUNTER)
    with pytest.raises(ValueError, match=r"takes labels \('kind',\)"):
        metric.inc(b="1")
    with pytest.raises(TypeError, match="not a gauge"):
        metric.set(1.0, kind="a")

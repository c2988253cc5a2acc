"""The monitors' pure core: windows, the latency histogram, observations, evaluation and its states."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime

import orjson
import pytest
from pydantic import ValidationError

from llmops_monitors import metrics, observe
from llmops_monitors.evaluation import Monitor, State, alert_message, baseline_of, group_aggregates, read, step
from llmops_monitors.schemas import MonitorCreate
from llmops_monitors.windows import SPECS, WindowSpec, parse_window
from llmops_shared.contract import BadEvent
from tests.support.events import make_event


def test_window_starts_match_faust_and_closing_lists_ends_in_order() -> None:
    from faust.windows import HoppingWindow

    for spec in SPECS:
        faust_window = HoppingWindow(spec.size_s, spec.step_s)
        for t in (0.0, 59.9, 60.0, 1_700_000_123.4):
            assert spec.starts(t) == [int(r[0]) for r in faust_window.ranges(t)]
    assert parse_window("5m/1m") == WindowSpec(300, 60) and parse_window("1h").tumbling
    assert WindowSpec(300, 60).closing(600, 900.5) == [660, 720, 780, 840, 900]
    with pytest.raises(ValueError, match="unknown window '7m'"):
        parse_window("7m")


def test_histogram_percentiles_are_within_a_bucket() -> None:
    agg = metrics.empty()
    for ms in [100.0] * 90 + [2000.0] * 10:
        agg = metrics.add(agg, {metrics.LAT_N: 1, metrics.LAT_SUM: ms, metrics.bucket_of(ms): 1})
    p50, p99 = metrics.percentile(agg, 0.5), metrics.percentile(agg, 0.99)
    assert p50 is not None and 79 < p50 <= 100
    assert p99 is not None and 1995 < p99 <= 2512  # 2000 ms: the bucket (1995, 2512]
    assert metrics.value("latency", "mean", agg) == pytest.approx(290.0)
    assert metrics.percentile(metrics.empty(), 0.95) is None
    assert metrics.bucket_of(0.2) == metrics.BUCKETS_AT and metrics.bucket_of(10**7) == metrics.WIDTH - 1


def test_observations_of_each_source() -> None:
    event = {**make_event(status="error", error={"type": "RateLimit"}, latency_ms=250.0, model="gpt-4o",
                          prompt={"name": "greet", "version": "v2"}, usage={"input_tokens": 7, "output_tokens": 3}),
             "tenant_id": "acme", "metadata": {"guardrails": {"findings": 2}}}
    obs = observe.from_clean(orjson.dumps(event))
    assert obs is not None and obs.key == "acme|support-bot|test|gpt-4o|greet@v2"
    assert obs.delta[metrics.ERRORS] == 1 and obs.delta[metrics.TOKENS] == 10 and obs.delta[metrics.FINDINGS] == 1
    assert obs.event_id == event["event_id"]  # a repeat of the event from another message is dropped by it
    obs = replace(obs, event_id="")  # (used before the observations topic, not sent on it)
    assert observe.decode_batch(obs.to_json()) == [obs]  # one observation, as an earlier version sent it
    sourced = [replace(obs, origin="c3", offset=41), replace(obs, t=obs.t + 1, origin="c3", offset=42)]
    assert observe.decode_batch(observe.encode_batch(sourced)) == sourced
    assert observe.from_clean(orjson.dumps({**make_event(span_kind="chain"), "tenant_id": "acme"})) is None

    score = {"tenant_id": "acme", "app_id": "bot", "environment": "prod", "status": "ok", "score": 0.25,
             "occurred_at": "2026-11-24T10:00:00+00:00"}
    s = observe.from_score(orjson.dumps(score))
    assert s is not None and s.key == "acme|bot|prod||" and s.delta == {metrics.SCORE_SUM: 0.25, metrics.SCORE_N: 1}
    assert observe.from_score(orjson.dumps({**score, "status": "error", "score": None})) is None
    assert s.event_id == ""  # no event: never deduplicated
    judged = {**score, "event_id": str(uuid.uuid4()), "evaluator_id": "ev", "rubric": "relevance", "rubric_version": 1}
    ids = {observe.score_id(judged), observe.score_id({**judged, "rubric": "tone"}),
           observe.score_id({**judged, "rubric_version": 2}), observe.score_id({**judged, "evaluator_id": "ev2"})}
    assert len(ids) == 4 and observe.from_score(orjson.dumps(judged)).event_id == observe.score_id(judged)  # type: ignore[union-attr]
    usage = {"tenant_id": "acme", "app_id": "bot", "event_id": str(uuid.uuid4()), "environment": "prod",
             "occurred_at": "2026-11-24T10:00:00Z", "model": "gpt-4o", "cost_total": "0.0125"}
    u = observe.from_usage(orjson.dumps(usage))
    assert u.delta == {metrics.COST: 0.0125, metrics.COST_N: 1.0}
    for bad, source in ((b"{nope", observe.from_score), (orjson.dumps({"tenant_id": "x"}), observe.from_score),
                        (b"[]", observe.from_usage), (b"{}", observe.from_clean), (b"{", observe.decode_batch)):
        with pytest.raises(BadEvent):
            source(bad)


def monitor(**overrides: object) -> Monitor:
    base: dict[str, object] = {
        "monitor_id": 7, "tenant_id": "acme", "name": "errors", "metric": "error_rate", "aggregation": "ratio",
        "window_spec": "1m", "app_id": None, "group_by": ["model"], "condition": {"op": ">", "threshold": 0.2},
        "min_samples": 5, "severity": "critical", "channel_ids": [3], "resolve_after": 2}
    return Monitor.from_record({**base, **overrides})


def test_groups_breaches_min_samples_and_baselines() -> None:
    m = monitor()
    windows = {"acme|a|prod|m1|": metrics.add(None, {metrics.COUNT: 10, metrics.ERRORS: 5}),
               "acme|a|dev|m1|p@1": metrics.add(None, {metrics.COUNT: 10}),
               "acme|a|prod|m2|": metrics.add(None, {metrics.COUNT: 3, metrics.ERRORS: 3}),
               "other|a|prod|m1|": metrics.add(None, {metrics.COUNT: 10, metrics.ERRORS: 10})}
    groups = group_aggregates(m, windows)
    assert set(groups) == {"acme|a|*|m1|*", "acme|a|*|m2|*"}
    assert read(m, groups["acme|a|*|m1|*"]).breaching  # 5 / 20 = 0.25 > 0.2
    assert not read(m, groups["acme|a|*|m2|*"]).breaching  # 100% errors, but 3 samples < 5
    relative = monitor(condition={"op": ">", "baseline": "same_window_previous_days", "factor": 2, "days": 7})
    assert not read(relative, groups["acme|a|*|m1|*"], baseline=None).breaching  # no history: no breach
    assert read(relative, groups["acme|a|*|m1|*"], baseline=0.1).breaching  # 0.25 > 2 x 0.1
    assert not read(relative, groups["acme|a|*|m1|*"], baseline=0.2).breaching
    assert baseline_of([None, 0.1, 0.3]) == pytest.approx(0.2) and baseline_of([None]) is None


def test_a_firing_resolves_after_enough_clear_windows_in_a_row() -> None:
    state, sent = State(), []
    for breaching in (False, True, True, False, True, False, False, False):
        state, transition = step(state, breaching, resolve_after=2)
        sent.append(transition)
    assert sent == [None, "open", None, None, None, None, "resolve", None]


def test_alert_messages_name_the_group_and_the_channels() -> None:
    m = monitor()
    reading = read(m, metrics.add(None, {metrics.COUNT: 10, metrics.ERRORS: 5}))
    end = datetime(2026, 11, 24, 10, 1, tzinfo=UTC)
    opened = alert_message(m, "acme|a|*|m1|*", firing_id=9, status="open", window_end=end, reading=reading)
    resolved = alert_message(m, "acme|a|*|m1|*", firing_id=9, status="resolved", window_end=end, reading=reading)
    assert opened.fingerprint == resolved.fingerprint and opened.alert_id == resolved.alert_id
    assert opened.message_id != resolved.message_id
    assert opened.details["channel_ids"] == [3] and opened.app_id == "a" and "model=m1" in opened.title


@pytest.mark.parametrize(("change", "field"), [
    ({"metric": "colour"}, ("metric",)),
    ({"window": "7m"}, ("window",)),
    ({"window": "5m/10m"}, ("window",)),
    ({"condition": {"op": ">", "threshold": "high"}}, ("condition", "threshold")),
    ({"condition": {"op": ">", "threshold": True}}, ("condition", "threshold")),
    ({"metric": "cost", "aggregation": "p95"}, ("aggregation",)),
    ({"group_by": ["colour"]}, ("group_by", 0)),
    ({"condition": {"op": "!="}}, ("condition",)),
])
def test_bad_definitions_name_their_field(change: dict[str, object], field: tuple[object, ...]) -> None:
    body = {"name": "x", "metric": "error_rate", "window": "5m", "condition": {"op": ">", "threshold": 0.1}, **change}
    with pytest.raises(ValidationError) as caught:
        MonitorCreate.model_validate(body)
    assert any(tuple(e["loc"][:len(field)]) == field for e in caught.value.errors()), caught.value.errors()


def test_latency_shorthand() -> None:
    m = MonitorCreate.model_validate({"name": "slow", "metric": "latency_p99", "window": "1h/5m",
                                      "condition": {"op": ">", "threshold": 800}})
    assert (m.metric, m.aggregation, m.window) == ("latency", "p99", "1h/5m")


def test_a_pane_counts_an_origin_s_observation_once_by_its_offset_mark() -> None:
    from llmops_monitors import panes

    def obs(offset: int, origin: str = "c0") -> observe.Observation:
        return observe.Observation("acme|bot|||", 30.0, {metrics.COUNT: 1.0}, origin, offset)

    value = None
    for o in (obs(3), obs(5), obs(5), obs(4), obs(3, "c1"), obs(2, "u0"), obs(6)):  # 5 and 4 again: redelivered
        value = panes.apply(value, o)
    assert value == {"v": {str(metrics.COUNT): 5.0}, "o": {"c0": 6, "c1": 3, "u0": 2}}
    assert panes.vector({str(metrics.COUNT): 2.0}) == {str(metrics.COUNT): 2.0}  # a pane written before the marks
    assert panes.apply({str(metrics.COUNT): 2.0}, obs(0)) == {"v": {str(metrics.COUNT): 3.0}, "o": {"c0": 0}}


def test_windows_summed_from_panes_equal_a_brute_force_over_the_events() -> None:
    """Every spec's tumbling and hopping windows, summed from 1-minute panes as the closer does, equal each
    window computed straight from the events that fall in it: counts, errors, tokens, findings, the latency
    histogram (so every percentile), cost and score sums. Values are dyadic (k/1024), so float sums are exact
    in any order and the comparison is `==`."""
    import random

    from llmops_monitors import panes
    from llmops_monitors.observe import Observation

    rng = random.Random(15)
    t0 = 1_796_299_800
    keys = ["acme|bot|prod|m1|", "acme|bot|prod|m2|p@1", "acme|other|dev|m1|"]
    events: list[Observation] = []
    for offset in range(3_000):
        t = t0 + rng.uniform(0, 3 * 3600)
        latency = float(rng.randint(1, 20_000))
        delta: metrics.Delta = {metrics.COUNT: 1.0, metrics.TOKENS: float(rng.randint(0, 4000)),
                                metrics.LAT_N: 1.0, metrics.LAT_SUM: latency, metrics.bucket_of(latency): 1.0}
        if rng.random() < 0.2:
            delta[metrics.ERRORS] = 1.0
        if rng.random() < 0.1:
            delta[metrics.FINDINGS] = 1.0
        if rng.random() < 0.5:
            delta |= {metrics.COST: rng.randint(0, 10_000) / 1024, metrics.COST_N: 1.0}
        if rng.random() < 0.3:
            delta |= {metrics.SCORE_SUM: rng.randint(0, 8) / 8, metrics.SCORE_N: 1.0}
        events.append(Observation(rng.choice(keys), t, delta, "c0", offset))
    table: dict[object, panes.PaneValue] = {}
    for e in events:
        start = int(e.t // 60) * 60
        key = (e.key, (float(start), start + 60 - 0.1))
        table[key] = panes.apply(table.get(key), e)
    by_start = panes.index(table)
    checked = 0
    for spec in SPECS:
        for end in range(t0 - 3600, t0 + 4 * 3600 + 1, spec.step_s):
            start = end - spec.size_s
            summed = panes.window_sum(table, by_start, start, end)
            brute: dict[str, metrics.Agg] = {}
            for e in events:
                if start <= e.t < end:
                    brute[e.key] = metrics.add(brute.get(e.key), e.delta)
            assert summed == brute, (spec.name, end)
            for key, agg in brute.items():  # and so every metric's value (percentiles included)
                for name, metric in metrics.METRICS.items():
                    for aggregation in metric.aggregations:
                        assert metrics.value(name, aggregation, summed[key]) == metrics.value(name, aggregation, agg)
            checked += len(brute)
    assert checked > 1_000

"""Alert rules: firing windows, episodes and their dedup, backfills, retrain requests, config errors."""

from __future__ import annotations

import logging
import math
from datetime import date, timedelta
from typing import Any

import pytest
from omegaconf import OmegaConf

from lakeforge.errors import ConfigError, ConfigErrors
from lakeforge.monitoring.alerts import (
    AlertEvent,
    AlertRule,
    evaluate,
    retrain_request,
    rules_from_config,
)

D0 = date(2013, 11, 1)
DRIFT = AlertRule("drift", "drift_share", above=0.3, retrain=True)
AUC = AlertRule("auc_floor", "performance.roc_auc", below=0.6, severity="critical")
LATE = AlertRule("late", "predictions_late", when_true=True)

History = list[tuple[date, dict[str, Any]]]


def day(n: int) -> date:
    """The n-th run date, 1-based: day(1) is 2013-11-01."""
    return D0 + timedelta(days=n - 1)


def series(signal: str, *values: Any) -> History:
    """One signal over consecutive run dates from day(1); None leaves the signal out of that date."""
    return [(day(i + 1), {} if v is None else {signal: v}) for i, v in enumerate(values)]


def replay(rules: list[AlertRule], history: History, order: list[date] | None = None) -> dict[date, list[AlertEvent]]:
    """Run the monitor date by date like the job does, keeping the recorded rows as the alerts table."""
    table: dict[tuple[str, date], AlertEvent] = {}
    out = {}
    for run_date in order or [d for d, _ in history]:
        known = [(d, s) for d, s in history if d <= run_date]
        out[run_date] = events = evaluate(rules, known, run_date, list(table.values()))
        for event in events:
            table[(event.rule, run_date)] = event
    return out


def statuses(events_by_date: dict[date, list[AlertEvent]]) -> list[tuple[str, ...]]:
    return [tuple(f"{e.rule}:{e.status}:{e.episode_id}" for e in events) for events in events_by_date.values()]


class TestRuleKinds:
    def test_above_fires_strictly_above(self) -> None:
        events = replay([DRIFT], series("drift_share", 0.3, 0.31))
        assert statuses(events) == [(), ("drift:opened:drift:2013-11-02",)]
        opened = events[day(2)][0]
        assert (opened.value, opened.threshold, opened.severity) == (0.31, 0.3, "warning")
        assert opened.message == "drift_share 0.31 > 0.30 (since 2013-11-02)"

    def test_below_fires_strictly_below(self) -> None:
        events = replay([AUC], series("performance.roc_auc", 0.6, 0.55))
        assert statuses(events) == [(), ("auc_floor:opened:auc_floor:2013-11-02",)]
        assert events[day(2)][0].message == "performance.roc_auc 0.55 < 0.60 (since 2013-11-02)"
        assert events[day(2)][0].severity == "critical"

    def test_when_true_fires_on_a_true_flag(self) -> None:
        events = replay([LATE], series("predictions_late", False, True, False))
        assert statuses(events) == [(), ("late:opened:late:2013-11-02",), ("late:resolved:late:2013-11-02",)]
        assert events[day(2)][0].message == "predictions_late is true (since 2013-11-02)"
        assert events[day(3)][0].message == (
            "predictions_late no longer true (episode since 2013-11-02); false on 2013-11-03"
        )

    def test_numpy_values_are_read_as_numbers_and_flags(self) -> None:
        np = pytest.importorskip("numpy")
        history = [(day(1), {"drift_share": np.float64(0.5), "predictions_late": np.bool_(True)})]
        events = evaluate([DRIFT, LATE], history, day(1))
        assert [(e.rule, e.value) for e in events] == [("drift", 0.5), ("late", True)]
        assert type(events[1].value) is bool

    def test_a_flag_compared_with_a_number_is_a_config_error(self) -> None:
        rule = AlertRule("late", "predictions_late", above=0.5)
        with pytest.raises(
            ConfigError,
            match=r"^monitor\.alerts\.rules\[1\]\.above: rule 'late' needs a numeric signal "
            r"but 'predictions_late' is True on 2013-11-01; use when_true: true instead$",
        ):
            evaluate([DRIFT, rule], [(day(1), {"predictions_late": True})], day(1))

    def test_a_number_for_when_true_is_a_config_error(self) -> None:
        rule = AlertRule("drifty", "drift_share", when_true=True)
        with pytest.raises(
            ConfigError,
            match=r"^monitor\.alerts\.rules\[0\]\.when_true: rule 'drifty' needs a "
            r"true/false signal but 'drift_share' is 0\.4 on 2013-11-01; use above or below instead$",
        ):
            evaluate([rule], [(day(1), {"drift_share": 0.4})], day(1))


class TestWindows:
    RULE = AlertRule("drift", "drift_share", above=0.3, n_of=2, last=3)

    def test_n_of_last_fires_only_with_enough_breaches_in_the_window(self) -> None:
        events = replay([self.RULE], series("drift_share", 0.4, 0.1, 0.4, 0.4, 0.1, 0.1))
        assert statuses(events) == [
            (),
            (),
            ("drift:opened:drift:2013-11-03",),
            ("drift:ongoing:drift:2013-11-03",),
            ("drift:ongoing:drift:2013-11-03",),  # 0.4, 0.4, 0.1: still 2 of 3
            ("drift:resolved:drift:2013-11-03",),
        ]

    def test_messages_name_the_value_the_window_and_the_start(self) -> None:
        events = evaluate([self.RULE], series("drift_share", 0.4, 0.35, 0.1, 0.4), day(4))
        assert events[0].message == "drift_share 0.40 > 0.30 on 2 of the last 3 run dates (since 2013-11-02)"
        calm_today = evaluate([self.RULE], series("drift_share", 0.4, 0.35, 0.1), day(3))
        assert calm_today[0].message == (
            "drift_share > 0.30 on 2 of the last 3 run dates (since 2013-11-02); 0.10 on 2013-11-03"
        )
        resolved = evaluate([self.RULE], series("drift_share", 0.4, 0.35, 0.1, 0.004), day(4))
        assert resolved[0].status == "resolved"
        assert resolved[0].message == (
            "drift_share no longer > 0.30 on 2 of the last 3 run dates (episode since 2013-11-02); 0.004 on 2013-11-04"
        )

    def test_fewer_dates_than_last_count_as_they_are(self) -> None:
        events = evaluate([self.RULE], series("drift_share", 0.4, 0.4), day(2))
        assert [e.status for e in events] == ["opened"]
        assert events[0].episode_start == day(2)
        assert "on 2 of the last 2 run dates" in events[0].message

    def test_dates_without_the_signal_are_skipped_in_the_window(self) -> None:
        history = series("drift_share", 0.4, None, 0.1, None, 0.4)
        events = replay([self.RULE], history)
        assert statuses(events)[-1] == ("drift:opened:drift:2013-11-05",)
        assert "on 2 of the last 3 run dates" in events[day(5)][0].message


class TestAbsentSignals:
    def test_an_absent_signal_never_opens(self) -> None:
        assert statuses(replay([AUC], series("performance.roc_auc", None, None, math.nan))) == [(), (), ()]

    def test_an_absent_signal_keeps_an_open_episode_without_resolving_it(self) -> None:
        events = replay([AUC], series("performance.roc_auc", 0.5, None, math.nan, 0.7))
        assert statuses(events) == [
            ("auc_floor:opened:auc_floor:2013-11-01",),
            ("auc_floor:ongoing:auc_floor:2013-11-01",),
            ("auc_floor:ongoing:auc_floor:2013-11-01",),
            ("auc_floor:resolved:auc_floor:2013-11-01",),
        ]
        unknown = events[day(2)][0]
        assert unknown.value is None
        assert unknown.message == "performance.roc_auc < 0.60 (since 2013-11-01); no value on 2013-11-02"

    def test_a_run_date_missing_from_history_counts_as_a_date_without_signals(self) -> None:
        events = evaluate([DRIFT], series("drift_share", 0.4), day(2))
        assert [(e.status, e.value) for e in events] == [("ongoing", None)]


class TestEpisodes:
    def test_open_ongoing_resolved_then_reopened_as_a_new_episode(self) -> None:
        events = replay([DRIFT], series("drift_share", 0.4, 0.5, 0.1, 0.1, 0.6))
        assert statuses(events) == [
            ("drift:opened:drift:2013-11-01",),
            ("drift:ongoing:drift:2013-11-01",),
            ("drift:resolved:drift:2013-11-01",),
            (),
            ("drift:opened:drift:2013-11-05",),
        ]
        flat = [e for es in events.values() for e in es]
        assert [(e.notify, e.retrain) for e in flat] == [(True, True), (False, False), (True, False), (True, True)]
        assert [e.episode_start for e in flat] == [day(1), day(1), day(1), day(5)]

    def test_each_rule_has_its_own_episodes_in_rule_order(self) -> None:
        history = [(day(1), {"drift_share": 0.4, "predictions_late": True, "performance.roc_auc": 0.9})]
        events = evaluate([LATE, AUC, DRIFT], history, day(1))
        assert [(e.rule, e.episode_id) for e in events] == [("late", "late:2013-11-01"), ("drift", "drift:2013-11-01")]

    def test_string_dates_and_any_history_order_are_accepted(self) -> None:
        history: list[tuple[date | str, dict[str, Any]]] = [
            ("2013-11-03", {"drift_share": 0.4}),
            ("2013-11-01", {"drift_share": 0.1}),
            (day(2), {}),
        ]
        events = evaluate([DRIFT], history, "2013-11-03")
        assert [(e.run_date, e.status) for e in events] == [(day(3), "opened")]

    def test_a_date_twice_in_history_is_a_bug_in_the_caller(self) -> None:
        with pytest.raises(ValueError, match="history has run date 2013-11-01 twice"):
            evaluate([DRIFT], series("drift_share", 0.4) * 2, day(1))

    def test_to_dict_is_json_ready(self) -> None:
        row = evaluate([DRIFT], series("drift_share", 0.4), day(1))[0].to_dict()
        assert row["run_date"] == row["episode_start"] == "2013-11-01"
        assert row["episode_id"] == "drift:2013-11-01"


class TestDedupAndBackfill:
    HISTORY = series("drift_share", 0.4, 0.5, 0.6, 0.1)

    def test_same_input_gives_the_same_events(self) -> None:
        recorded = [e for es in replay([DRIFT], self.HISTORY).values() for e in es]
        for run_date, _ in self.HISTORY:
            first = evaluate([DRIFT], self.HISTORY, run_date, recorded)
            assert evaluate([DRIFT], list(reversed(self.HISTORY)), run_date, recorded) == first

    def test_re_running_dates_recomputes_the_episode_and_notifies_nobody_twice(self) -> None:
        first = replay([DRIFT], self.HISTORY)
        recorded = [e for es in first.values() for e in es]
        again = {d: evaluate([DRIFT], self.HISTORY, d, recorded) for d in first}
        assert statuses(again) == statuses(first)
        assert [e.notify for es in again.values() for e in es] == [False] * 4
        assert [e.message for es in again.values() for e in es] == [e.message for e in recorded]

    def test_table_rows_as_mappings_work_like_events(self) -> None:
        rows = [{**e.to_dict()} for es in replay([DRIFT], self.HISTORY).values() for e in es]
        events = evaluate([DRIFT], self.HISTORY, day(1), rows)
        assert [(e.status, e.notify) for e in events] == [("opened", False)]

    def test_backfilling_a_missed_breached_date_continues_the_episode(self) -> None:
        full = series("drift_share", 0.4, 0.5, 0.6, 0.7)
        missed = [(d, s) for d, s in full if d != day(3)]
        table = [e for es in replay([DRIFT], missed).values() for e in es]
        assert {e.episode_id for e in table} == {"drift:2013-11-01"}
        backfill = evaluate([DRIFT], full, day(3), table)
        assert [(e.status, e.episode_id, e.notify) for e in backfill] == [("ongoing", "drift:2013-11-01", False)]

    def test_backfilling_out_of_order_ignores_later_dates(self) -> None:
        events = replay([DRIFT], self.HISTORY, order=[day(4), day(2), day(3), day(1)])
        assert statuses(events) == [
            ("drift:resolved:drift:2013-11-01",),
            ("drift:ongoing:drift:2013-11-01",),
            ("drift:ongoing:drift:2013-11-01",),
            ("drift:opened:drift:2013-11-01",),
        ]
        flat = [e for es in events.values() for e in es]
        assert sum(e.status == "opened" for e in flat) == 1
        assert [e.notify for e in flat] == [True, False, False, True]

    def test_a_gap_in_the_runs_neither_ends_nor_extends_an_episode(self) -> None:
        history = [(day(1), {"drift_share": 0.4}), (day(9), {"drift_share": 0.5})]
        events = evaluate([DRIFT], history, day(9))
        assert [(e.status, e.episode_id) for e in events] == [("ongoing", "drift:2013-11-01")]


class TestTruncatedHistory:
    OPEN = AlertEvent(
        run_date=day(3),
        rule="drift",
        signal="drift_share",
        status="ongoing",
        episode_id="drift:2013-11-01",
        episode_start=day(1),
        value=0.4,
        threshold=0.3,
        severity="warning",
        message="…",
        notify=False,
        retrain=False,
    )

    def test_a_recorded_open_episode_continues_past_the_history_start(self) -> None:
        events = evaluate([DRIFT], [(day(8), {"drift_share": 0.5})], day(8), [self.OPEN])
        assert [(e.status, e.episode_id, e.notify) for e in events] == [("ongoing", "drift:2013-11-01", False)]

    def test_a_recorded_open_episode_resolves_when_history_starts_calm(self) -> None:
        events = evaluate([DRIFT], [(day(8), {"drift_share": 0.1})], day(8), [self.OPEN])
        assert [(e.status, e.episode_id, e.notify) for e in events] == [("resolved", "drift:2013-11-01", True)]
        assert events[0].message == "drift_share no longer > 0.30 (episode since 2013-11-01); 0.10 on 2013-11-08"

    def test_an_episode_recorded_resolved_before_the_history_start_stays_closed(self) -> None:
        resolved = AlertEvent(**{**vars(self.OPEN), "run_date": day(5), "status": "resolved"})
        events = evaluate([DRIFT], [(day(8), {"drift_share": 0.5})], day(8), [self.OPEN, resolved])
        assert [(e.status, e.episode_id) for e in events] == [("opened", "drift:2013-11-08")]

    def test_another_rules_episode_is_not_continued(self) -> None:
        other = AlertEvent(**{**vars(self.OPEN), "rule": "late", "episode_id": "late:2013-11-01"})
        events = evaluate([DRIFT], [(day(8), {"drift_share": 0.5})], day(8), [other])
        assert [(e.status, e.episode_id) for e in events] == [("opened", "drift:2013-11-08")]


class TestRetrainRequest:
    def _opened(self, run_date: date = D0 + timedelta(days=9)) -> list[AlertEvent]:
        history = [(run_date, {"drift_share": 0.4, "predictions_late": True})]
        return evaluate([DRIFT, LATE], history, run_date)

    def test_an_opened_retrain_rule_asks_for_a_retrain(self) -> None:
        request = retrain_request(self._opened(), None, 7)
        assert request is not None
        assert (request.run_date, request.rules, request.episode_ids) == (day(10), ("drift",), ("drift:2013-11-10",))
        assert request.reason == "drift: drift_share 0.40 > 0.30 (since 2013-11-10)"

    def test_ongoing_events_and_other_rules_ask_for_nothing(self) -> None:
        ongoing = evaluate([DRIFT, LATE], series("drift_share", 0.4, 0.5), day(2))
        assert retrain_request(ongoing, None, 7) is None
        late_only = [e for e in self._opened() if e.rule == "late"]
        assert retrain_request(late_only, None, 7) is None

    def test_the_cooldown_allows_one_request_per_period(self, caplog: pytest.LogCaptureFixture) -> None:
        with caplog.at_level(logging.INFO, logger="lakeforge.monitoring.alerts"):
            assert retrain_request(self._opened(), day(4), 7) is None
        assert "retrain asked by 'drift' on 2013-11-10 is not requested: the last request (2013-11-04)" in caplog.text
        assert retrain_request(self._opened(), "2013-11-03", 7) is not None
        assert retrain_request(self._opened(), day(10), 0) is not None

    def test_a_backfill_before_the_last_request_asks_for_nothing(self) -> None:
        assert retrain_request(self._opened(day(2)), day(10), 7) is None

    def test_a_negative_cooldown_is_a_config_error(self) -> None:
        with pytest.raises(
            ConfigError,
            match=r"^monitor\.alerts\.retrain\.cooldown_days: must be a whole number "
            r"of days >= 0, got -1$",
        ):
            retrain_request([], None, -1)


class TestRulesFromConfig:
    def test_builds_rules_with_defaults(self) -> None:
        rules = rules_from_config(
            [
                {"name": "drift", "signal": "drift_share", "above": 0.3, "n_of": 2, "last": 3, "retrain": True},
                {"name": "auc_floor", "signal": "performance.roc_auc", "below": 0.6, "severity": "critical"},
                {"name": "late", "signal": "predictions_late", "when_true": True},
            ]
        )
        assert rules == [
            AlertRule("drift", "drift_share", above=0.3, n_of=2, last=3, retrain=True),
            AlertRule("auc_floor", "performance.roc_auc", below=0.6, severity="critical"),
            LATE,
        ]
        assert [(r.op, r.threshold) for r in rules] == [(">", 0.3), ("<", 0.6), ("is true", True)]

    def test_accepts_omegaconf_nodes_and_none(self) -> None:
        node = OmegaConf.create([{"name": "d", "signal": "drift_share", "above": 1, "when_true": False}])
        assert rules_from_config(node) == [AlertRule("d", "drift_share", above=1.0)]
        assert rules_from_config(None) == []

    @pytest.mark.parametrize(
        ("rule", "message"),
        [
            ({"signal": "s", "above": 1}, r"monitor\.alerts\.rules\[1\]\.name: missing: set a unique rule name"),
            ({"name": "x", "above": 1}, r"rules\[1\]\.signal: missing: set the signal to watch, e\.g\. drift_share"),
            (
                {"name": "x", "signal": "s"},
                r"rules\[1\]: needs exactly one of above, below or when_true: true "
                r"\(none is set\)",
            ),
            ({"name": "x", "signal": "s", "when_true": False}, r"rules\[1\]: needs exactly one .*\(none is set\)"),
            (
                {"name": "x", "signal": "s", "above": 1, "below": 0},
                r"rules\[1\]\.below: needs exactly one of above, "
                r"below or when_true: true \(this rule sets above and below\)",
            ),
            ({"name": "x", "signal": "s", "above": "high"}, r"rules\[1\]\.above: must be a number, got 'high'"),
            ({"name": "x", "signal": "s", "above": True}, r"rules\[1\]\.above: must be a number, got True"),
            ({"name": "x", "signal": "s", "when_true": "yes"}, r"rules\[1\]\.when_true: must be true or false"),
            (
                {"name": "x", "signal": "s", "above": 1, "n_of": 3, "last": 2},
                r"rules\[1\]\.n_of: n_of 3 is more "
                r"than last 2; allowed: 1 <= n_of <= last",
            ),
            (
                {"name": "x", "signal": "s", "above": 1, "n_of": 0},
                r"rules\[1\]\.n_of: must be a whole number >= 1, "
                r"got 0",
            ),
            ({"name": "x", "signal": "s", "above": 1, "last": 1.5}, r"rules\[1\]\.last: must be a whole number"),
            (
                {"name": "x", "signal": "s", "above": 1, "severity": "warn"},
                r"rules\[1\]\.severity: unknown severity "
                r"'warn' \(did you mean 'warning'\?\); allowed: info, warning, critical",
            ),
            (
                {"name": "x", "signal": "s", "above": 1, "abvoe": 1},
                r"rules\[1\]\.abvoe: unknown key 'abvoe' \(did you mean "
                r"'above'\?\); allowed: name, signal, above, below, when_true, n_of, last, severity, retrain",
            ),
            (
                {"name": "drift", "signal": "s", "above": 1},
                r"rules\[1\]\.name: 'drift' is already the name of "
                r"monitor\.alerts\.rules\[0\]; names must be unique",
            ),
            ("drift", r"rules\[1\]: must be a mapping with name, signal and one of above, below or when_true"),
        ],
    )
    def test_each_problem_names_its_key_and_what_is_allowed(self, rule: Any, message: str) -> None:
        first = {"name": "drift", "signal": "drift_share", "above": 0.3}
        with pytest.raises(ConfigError, match=r"^conf/monitor/m\.yaml: (monitor\.alerts\.)?" + message):
            rules_from_config([first, rule], file="conf/monitor/m.yaml")

    def test_unknown_signals_are_named_when_the_signals_are_known(self) -> None:
        with pytest.raises(
            ConfigError,
            match=r"^monitor\.alerts\.rules\[0\]\.signal: 'drift_shar' is not a signal "
            r"of this monitor \(did you mean 'drift_share'\?\) \(known: drift_share, volume_ratio\)$",
        ):
            rules_from_config(
                [{"name": "d", "signal": "drift_shar", "above": 1}], signals=["volume_ratio", "drift_share"]
            )

    def test_every_problem_is_reported_at_once(self) -> None:
        with pytest.raises(
            ConfigErrors,
            match=r"^3 config problem\(s\):\nmonitor\.alerts\.rules\[0\]\.severity: .*\n"
            r"monitor\.alerts\.rules\[1\]: needs exactly one.*\nmonitor\.alerts\.rules\[1\]\.last",
        ):
            rules_from_config(
                [{"name": "a", "signal": "s", "above": 1, "severity": "high"}, {"name": "b", "signal": "s", "last": 0}]
            )

    def test_rules_must_be_a_list(self) -> None:
        with pytest.raises(
            ConfigError,
            match=r"^monitor\.alerts\.rules: must be a list of rules, each with name, "
            r"signal and a threshold$",
        ):
            rules_from_config({"name": "drift"})  # type: ignore[arg-type]

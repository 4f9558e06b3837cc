"""Alert rules over a monitor's per-date signals: firing windows, episodes and retrain requests.

A monitor run computes *signals* for one ``run_date``: a flat dict such as ``{"drift_share": 0.4,
"predictions_late": False, "performance.roc_auc": 0.71}``. A signal that is missing, None or NaN on
a date is *unknown* there (labels not in yet): it is neither breached nor fine.

Exact semantics of :func:`evaluate`:

* **Reading.** On a date that has the signal, a rule is *breached* when the value is ``> above``,
  ``< below``, or true (``when_true``).
* **Firing.** A rule fires on date ``d`` when it is breached on at least ``n_of`` of the last
  ``last`` history dates ``<= d`` that have the signal. Dates without the signal are skipped, so an
  unknown value neither opens nor resolves anything: the state carries over from the last date
  that had it. While fewer than ``last`` such dates exist, the ones there are count.
* **Episodes.** Over the history dates ``<= run_date`` in date order (dates after ``run_date`` are
  ignored, so a backfill sees only its past), an episode *opens* on the first date a rule fires,
  stays open while it fires, and ends on the first history date it does not. Dates with no
  history row (the monitor did not run) are no dates at all: a gap neither ends nor extends an
  episode. The episode id is ``"<rule>:<start date>"``, so recomputing gives the same id.
* **Events on run_date**, at most one per rule: ``opened`` (fires, and the episode starts on
  ``run_date``), ``ongoing`` (fires, the episode started earlier), ``resolved`` (does not fire, an
  episode was open just before ``run_date``; the event carries that episode), or none.
* **History is the truth.** Pass every recorded run date (one small row per date): statuses and
  episodes are then a pure function of ``history`` and ``run_date``, so re-running a date, or
  backfilling a missed one later, recomputes the same episode (same id) instead of opening a
  second one. (A truncated history gives its first dates short windows.)
* **Recorded alerts** (``open_alerts``) are the rows earlier runs wrote for this monitor: pass
  all of them (any status), or at least every row of the episodes still open. They serve two
  things. *Continuity*: a recorded episode of the rule that started before the first history
  date, and is not recorded resolved before it, is open as history begins; it continues while
  the rule fires and resolves on the first date it does not, so a truncated history neither
  re-opens nor forgets it. *Dedup*: ``notify`` is True for ``opened`` and ``resolved`` unless
  the same ``(episode_id, status)`` is recorded already, so a re-run gives the same statuses and
  ids but notifies nobody twice (``retrain`` follows ``notify``).

Store events keyed by (monitor, rule, run_date) so a re-run overwrites its own rows. A backfill
that moves an episode's start earlier (the missed date breached too) changes the id on later
dates; re-run those dates to rewrite their rows.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from typing import Any

from lakeforge.errors import ConfigError, ConfigErrors, did_you_mean

logger = logging.getLogger(__name__)

SEVERITIES = ("info", "warning", "critical")
STATUSES = ("opened", "ongoing", "resolved")
RULE_KEYS = ("name", "signal", "above", "below", "when_true", "n_of", "last", "severity", "retrain")
RULES_KEY = "monitor.alerts.rules"

DateLike = date | str
Signals = Mapping[str, Any]


def as_date(value: DateLike) -> date:
    """A ``datetime.date`` from a date, a datetime or an ISO ``YYYY-MM-DD`` string."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


@dataclass(frozen=True)
class AlertRule:
    """One rule: fire when ``signal`` is breached on ``n_of`` of the ``last`` run dates that have it."""

    name: str
    signal: str
    above: float | None = None
    below: float | None = None
    when_true: bool = False
    n_of: int = 1
    last: int = 1
    severity: str = "warning"
    retrain: bool = False

    @property
    def threshold(self) -> float | bool:
        """The value compared against: ``above``, ``below`` or True."""
        if self.above is not None:
            return self.above
        return self.below if self.below is not None else True

    @property
    def op(self) -> str:
        """How a breach reads in a message: ``>``, ``<`` or ``is true``."""
        return ">" if self.above is not None else "<" if self.below is not None else "is true"


@dataclass(frozen=True)
class AlertEvent:
    """What a rule did on one run date; one row of the alerts table."""

    run_date: date
    rule: str
    signal: str
    status: str  # opened | ongoing | resolved
    episode_id: str
    episode_start: date
    value: float | bool | None  # the signal on run_date; None when unknown there
    threshold: float | bool
    severity: str
    message: str
    notify: bool
    retrain: bool

    def to_dict(self) -> dict[str, Any]:
        """The event as JSON-ready values (dates as ISO strings)."""
        row = asdict(self)
        row["run_date"] = self.run_date.isoformat()
        row["episode_start"] = self.episode_start.isoformat()
        return row


@dataclass(frozen=True)
class RetrainRequest:
    """A request to retrain the model, made by the ``opened`` events of retrain rules."""

    run_date: date
    rules: tuple[str, ...]
    episode_ids: tuple[str, ...]
    reason: str


def rules_from_config(
    rules: Sequence[Mapping[str, Any]] | None, *, file: str | None = None, signals: Iterable[str] | None = None
) -> list[AlertRule]:
    """Validate the ``monitor.alerts.rules`` list and build the rules; every problem is reported at once.

    Args:
        file: the config file named in errors (e.g. ``conf/monitor/flight_delay.yaml``).
        signals: when given, the signal names the monitor computes; other names are errors.
    """
    if rules is None:
        return []
    if isinstance(rules, str | bytes | Mapping) or not isinstance(rules, Sequence):
        raise ConfigError("must be a list of rules, each with name, signal and a threshold", file=file, key=RULES_KEY)
    known = sorted(signals) if signals is not None else None
    problems: list[ConfigError] = []

    def report(where: str, message: str) -> None:
        problems.append(ConfigError(message, file=file, key=where))

    built: list[AlertRule] = []
    first_use: dict[str, int] = {}
    for i, raw in enumerate(rules):
        key = f"{RULES_KEY}[{i}]"
        if not isinstance(raw, Mapping):
            report(key, "must be a mapping with name, signal and one of above, below or when_true")
            continue
        name = raw.get("name")
        if isinstance(name, str) and name in first_use:
            report(
                f"{key}.name", f"'{name}' is already the name of {RULES_KEY}[{first_use[name]}]; names must be unique"
            )
        elif isinstance(name, str):
            first_use[name] = i
        rule = _parse_rule(raw, key, report, known)
        if rule is not None:
            built.append(rule)
    if len(problems) == 1:
        raise problems[0]
    if problems:
        raise ConfigErrors(problems)
    return built


def _parse_rule(
    raw: Mapping[str, Any], key: str, report: Callable[[str, str], None], known: list[str] | None
) -> AlertRule | None:
    """One rule from its mapping, or None after reporting its problems."""
    bad: list[str] = []

    def fail(field: str, message: str) -> None:
        bad.append(field)
        report(f"{key}.{field}" if field else key, message)

    for name in map(str, raw):
        if name not in RULE_KEYS:
            fail(name, f"unknown key '{name}'{did_you_mean(name, RULE_KEYS)}; allowed: " + ", ".join(RULE_KEYS))
    for field, what in (("name", "a unique rule name"), ("signal", "the signal to watch, e.g. drift_share")):
        if raw.get(field) in (None, ""):
            fail(field, f"missing: set {what}")
        elif not isinstance(raw[field], str):
            fail(field, f"must be a string, got {raw[field]!r}")
    signal = raw.get("signal")
    if known is not None and isinstance(signal, str) and signal and signal not in known:
        shown = ", ".join(known[:12]) + (", …" if len(known) > 12 else "")
        fail("signal", f"'{signal}' is not a signal of this monitor{did_you_mean(signal, known)} (known: {shown})")
    for field in ("above", "below"):
        value = raw.get(field)
        if value is not None and not (isinstance(value, int | float) and not isinstance(value, bool)):
            fail(field, f"must be a number, got {value!r}")
    for field in ("when_true", "retrain"):
        if raw.get(field) is not None and not isinstance(raw[field], bool):
            fail(field, f"must be true or false, got {raw[field]!r}")
    chosen = [f for f in ("above", "below") if raw.get(f) is not None] + (["when_true"] if raw.get("when_true") else [])
    if len(chosen) != 1:
        sets = f"this rule sets {' and '.join(chosen)}" if chosen else "none is set"
        fail(chosen[1] if chosen else "", f"needs exactly one of above, below or when_true: true ({sets})")
    n_of: Any = 1 if raw.get("n_of") is None else raw["n_of"]
    last: Any = 1 if raw.get("last") is None else raw["last"]
    for field, value in (("n_of", n_of), ("last", last)):
        if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
            fail(field, f"must be a whole number >= 1, got {value!r}")
    if not {"n_of", "last"} & set(bad) and n_of > last:
        fail("n_of", f"n_of {n_of} is more than last {last}; allowed: 1 <= n_of <= last")
    severity = raw.get("severity") or "warning"
    if severity not in SEVERITIES:
        hint = did_you_mean(str(severity), SEVERITIES)
        fail("severity", f"unknown severity '{severity}'{hint}; allowed: " + ", ".join(SEVERITIES))
    if bad:
        return None
    above, below = raw.get("above"), raw.get("below")
    return AlertRule(
        name=raw["name"],
        signal=raw["signal"],
        above=None if above is None else float(above),
        below=None if below is None else float(below),
        when_true=bool(raw.get("when_true")),
        n_of=n_of,
        last=last,
        severity=severity,
        retrain=bool(raw.get("retrain")),
    )


@dataclass(frozen=True)
class _Window:
    """A rule's window on one date: does it fire, and how many of how many readings breached."""

    firing: bool
    breached: int
    size: int


@dataclass(frozen=True)
class _Recorded:
    """The fields of a recorded alert row that evaluation reads."""

    rule: str
    episode_id: str
    episode_start: date
    run_date: date | None
    status: str


def evaluate(
    rules: Sequence[AlertRule],
    history: Iterable[tuple[DateLike, Signals]],
    run_date: DateLike,
    open_alerts: Iterable[AlertEvent | Mapping[str, Any]] = (),
) -> list[AlertEvent]:
    """The events of ``run_date``, at most one per rule in rule order (semantics: module docstring).

    Args:
        history: ``(run_date, signals)`` for earlier dates and ``run_date``, in any order; a
            missing ``run_date`` counts as a date with no signals.
        open_alerts: rows recorded by earlier runs (:class:`AlertEvent` or mappings with
            ``rule``, ``episode_id``, ``status`` and optionally ``episode_start``, ``run_date``).
    """
    today = as_date(run_date)
    by_date: dict[date, Signals] = {}
    for when, signals in history:
        day = as_date(when)
        if day in by_date:
            raise ValueError(f"history has run date {day} twice")
        by_date[day] = signals
    by_date.setdefault(today, {})
    dates = sorted(day for day in by_date if day <= today)
    recorded = [_as_recorded(row) for row in open_alerts]
    sent = {(row.episode_id, row.status) for row in recorded}
    events: list[AlertEvent] = []
    for index, rule in enumerate(rules):
        values = [_reading(rule, index, day, by_date[day].get(rule.signal)) for day in dates]
        found = _episode(rule, dates, values, _carried(rule.name, recorded, dates[0]))
        if found is None:
            continue
        status, episode_id, start, window = found
        notify = status != "ongoing" and (episode_id, status) not in sent
        events.append(
            AlertEvent(
                run_date=today,
                rule=rule.name,
                signal=rule.signal,
                status=status,
                episode_id=episode_id,
                episode_start=start,
                value=values[-1],
                threshold=rule.threshold,
                severity=rule.severity,
                message=_message(rule, status, values[-1], window, start, today),
                notify=notify,
                retrain=notify and rule.retrain and status == "opened",
            )
        )
    return events


def _episode(
    rule: AlertRule, dates: list[date], values: list[float | bool | None], carried: tuple[date, str] | None
) -> tuple[str, str, date, _Window] | None:
    """(status, episode id, episode start, window) on the last date, walking the dates in order."""
    current = before = carried
    readings: list[bool] = []
    window = _Window(False, 0, 0)
    for day, value in zip(dates, values, strict=True):
        if value is not None:
            readings.append(_breached(rule, value))
        recent = readings[-rule.last :]
        window = _Window(sum(recent) >= rule.n_of, sum(recent), len(recent))
        before = current
        current = (current or (day, f"{rule.name}:{day.isoformat()}")) if window.firing else None
    if current is not None:
        return ("ongoing" if before else "opened"), current[1], current[0], window
    if before is not None:
        return "resolved", before[1], before[0], window
    return None


def _carried(rule: str, recorded: list[_Recorded], first: date) -> tuple[date, str] | None:
    """The recorded episode still open when history begins: started before ``first``, not resolved before it."""
    resolved = {
        r.episode_id for r in recorded if r.rule == rule and r.status == "resolved" and (r.run_date or first) < first
    }
    open_before = [
        r
        for r in recorded
        if r.rule == rule and r.status != "resolved" and r.episode_start < first and r.episode_id not in resolved
    ]
    if not open_before:
        return None
    latest = max(open_before, key=lambda r: r.episode_start)
    return latest.episode_start, latest.episode_id


def _as_recorded(row: AlertEvent | Mapping[str, Any]) -> _Recorded:
    """Normalize a recorded row (an event, or a table row as a mapping)."""
    data: Mapping[str, Any] = row if isinstance(row, Mapping) else vars(row)
    episode_id = str(data["episode_id"])
    start = data.get("episode_start") or episode_id.rsplit(":", 1)[-1]
    status = str(data["status"])
    if status not in STATUSES:
        raise ValueError(f"recorded alert {episode_id} has unknown status '{status}'; allowed: {', '.join(STATUSES)}")
    when = data.get("run_date")
    return _Recorded(str(data["rule"]), episode_id, as_date(start), as_date(when) if when else None, status)


def _reading(rule: AlertRule, index: int, day: date, raw: Any) -> float | bool | None:
    """The signal's value on ``day`` as a float or a flag; None when unknown (missing, None, NaN)."""
    if raw is None or (isinstance(raw, float) and math.isnan(raw)):
        return None
    is_flag = isinstance(raw, bool) or getattr(getattr(raw, "dtype", None), "kind", "") == "b"  # numpy bools too
    if is_flag != rule.when_true or isinstance(raw, str | bytes):
        want, use = ("a true/false", "above or below") if rule.when_true else ("a numeric", "when_true: true")
        field = "when_true" if rule.when_true else "above" if rule.above is not None else "below"
        raise ConfigError(
            f"rule '{rule.name}' needs {want} signal but '{rule.signal}' is {raw!r} on {day}; use {use} instead",
            key=f"{RULES_KEY}[{index}].{field}",
        )
    if is_flag:
        return bool(raw)
    value = float(raw)
    return None if math.isnan(value) else value


def _breached(rule: AlertRule, value: float | bool) -> bool:
    if rule.above is not None:
        return value > rule.above
    if rule.below is not None:
        return value < rule.below
    return bool(value)


def _fmt(value: float | bool) -> str:
    """A value for a message: 2 decimals, more significant digits for small ones."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return f"{value:.2f}" if value == 0 or abs(value) >= 0.01 else f"{value:.2g}"


def _message(
    rule: AlertRule, status: str, value: float | bool | None, window: _Window, start: date, today: date
) -> str:
    """One line: what, value vs threshold, over which window, since when (and today's value if it says otherwise)."""
    test = "is true" if rule.when_true else f"{rule.op} {_fmt(rule.threshold)}"
    now = f"{_fmt(value)} on {today}" if value is not None else f"no value on {today}"
    if status == "resolved":
        over = f" on {rule.n_of} of the last {rule.last} run dates" if rule.last > 1 else ""
        return f"{rule.signal} no longer {test.removeprefix('is ')}{over} (episode since {start}); {now}"
    over = f" on {window.breached} of the last {window.size} run dates" if rule.last > 1 else ""
    if value is not None and _breached(rule, value):
        shown = "" if rule.when_true else f" {_fmt(value)}"
        return f"{rule.signal}{shown} {test}{over} (since {start})"
    return f"{rule.signal} {test}{over} (since {start}); {now}"


def retrain_request(
    events: Iterable[AlertEvent], last_request_date: DateLike | None, cooldown_days: int
) -> RetrainRequest | None:
    """A retrain request when a retrain rule opened an alert and the cooldown has passed, else None.

    The cooldown allows the next request from ``last_request_date + cooldown_days`` on; a
    backfilled date before that (even before the last request) asks for nothing.
    """
    if not isinstance(cooldown_days, int) or isinstance(cooldown_days, bool) or cooldown_days < 0:
        raise ConfigError(
            f"must be a whole number of days >= 0, got {cooldown_days!r}", key="monitor.alerts.retrain.cooldown_days"
        )
    asking = [event for event in events if event.retrain]
    if not asking:
        return None
    run_date = max(event.run_date for event in asking)
    rules = tuple(dict.fromkeys(event.rule for event in asking))
    if last_request_date is not None:
        allowed_from = as_date(last_request_date) + timedelta(days=cooldown_days)
        if run_date < allowed_from:
            logger.info(
                "retrain asked by %s on %s is not requested: the last request (%s) is within the %d-day cooldown",
                ", ".join(f"'{r}'" for r in rules),
                run_date,
                as_date(last_request_date),
                cooldown_days,
            )
            return None
    return RetrainRequest(
        run_date=run_date,
        rules=rules,
        episode_ids=tuple(event.episode_id for event in asking),
        reason="; ".join(f"{event.rule}: {event.message}" for event in asking),
    )

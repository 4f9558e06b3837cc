"""Alert channels: a short-name registry (log, file, webhook, email) that delivers a run's alerts.

:func:`send` batches the events to notify (``notify=True``) into one message per channel and
call. Delivery failures never raise: a broken webhook yields a failed :class:`ChannelResult` and a
warning, so it cannot fail monitoring. A bad channel *config* is a ConfigError from
:func:`channels_from_config`, raised before anything is sent. Secrets stay out of logs, results and
messages: a webhook is shown as ``scheme://host[:port]/…`` (no userinfo, path or query: chat
webhooks keep their token in the path) and the SMTP password is never shown.
"""

from __future__ import annotations

import json
import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import date
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

from lakeforge.errors import ConfigError, ConfigErrors, did_you_mean
from lakeforge.monitoring.alerts import SEVERITIES, AlertEvent, DateLike, as_date

logger = logging.getLogger(__name__)
alert_logger = logging.getLogger("lakeforge.alerts")  # the log channel: route it on its own

CHANNELS_KEY = "monitor.alerts.channels"
Report = Callable[[str, str], None]


@dataclass(frozen=True)
class Notification:
    """One batch of events for one model and run date, rendered for every channel."""

    model: str
    run_date: date
    events: tuple[AlertEvent, ...]

    @property
    def severity(self) -> str:
        """The highest severity in the batch."""
        return max((e.severity for e in self.events), key=SEVERITIES.index, default="info")

    @property
    def subject(self) -> str:
        """E.g. ``[lakeforge] warning: drift opened for flight_delay``."""
        what = [f"{e.rule} {e.status}" for e in self.events]
        if len(what) > 1:
            shown = ", ".join(what[:3]) + (", …" if len(what) > 3 else "")
            return f"[lakeforge] {self.severity}: {len(what)} alerts for {self.model} ({shown})"
        return f"[lakeforge] {self.severity}: {what[0] if what else 'no alerts'} for {self.model}"

    def lines(self) -> list[str]:
        """One line per event."""
        return [
            f"[{e.severity}] {e.rule} {e.status}: {e.message}" + (" (asks for a retrain)" if e.retrain else "")
            for e in self.events
        ]

    def text(self) -> str:
        """The plain-text body: the event lines and where they come from."""
        return "\n".join([*self.lines(), "", f"model {self.model}, run date {self.run_date}"])

    def payload(self) -> dict[str, Any]:
        """The JSON body of a webhook (``text`` makes chat webhooks show something readable)."""
        return {
            "source": "lakeforge",
            "model": self.model,
            "run_date": self.run_date.isoformat(),
            "severity": self.severity,
            "subject": self.subject,
            "text": self.subject + "\n" + "\n".join(self.lines()),
            "events": [e.to_dict() for e in self.events],
        }


@dataclass(frozen=True)
class ChannelResult:
    """How delivery to one channel went; ``target`` never holds a secret."""

    kind: str
    target: str
    ok: bool
    events: int
    error: str | None = None


class Channel(ABC):
    """A place alerts go; built from its config by :func:`channels_from_config`."""

    kind: ClassVar[str]

    @property
    @abstractmethod
    def target(self) -> str:
        """Where the channel delivers, safe to log."""

    @abstractmethod
    def deliver(self, note: Notification) -> None:
        """Deliver one batch; raise on failure (:func:`send` turns it into a failed result)."""

    def secrets(self) -> list[str]:
        """Strings to mask in error texts."""
        return []


@dataclass(frozen=True)
class LogChannel(Channel):
    """Log the batch as one record, at ERROR for critical, WARNING for warning, else INFO."""

    kind: ClassVar[str] = "log"

    @property
    def target(self) -> str:
        return alert_logger.name

    def deliver(self, note: Notification) -> None:
        opened = {e.severity for e in note.events if e.status != "resolved"}
        level = logging.ERROR if "critical" in opened else logging.WARNING if "warning" in opened else logging.INFO
        alert_logger.log(level, "%s on %s:\n  %s", note.subject, note.run_date, "\n  ".join(note.lines()))


@dataclass(frozen=True)
class FileChannel(Channel):
    """Append one JSON object per event to a JSON-lines file, creating its folder."""

    kind: ClassVar[str] = "file"
    path: Path

    @property
    def target(self) -> str:
        return str(self.path)

    def deliver(self, note: Notification) -> None:
        rows = [json.dumps({"model": note.model, **e.to_dict()}, sort_keys=True) for e in note.events]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as out:
            out.write("".join(row + "\n" for row in rows))


def redact_url(url: str) -> str:
    """``scheme://host[:port]/…``: a URL without userinfo, path, query or fragment."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    port = f":{parts.port}" if parts.port else ""
    rest = "/…" if parts.path.strip("/") or parts.query or parts.fragment else ""
    return f"{parts.scheme}://{host}{port}{rest}"


@dataclass(frozen=True)
class WebhookChannel(Channel):
    """POST the batch as JSON; userinfo in the URL becomes HTTP basic auth."""

    kind: ClassVar[str] = "webhook"
    url: str = field(repr=False)
    timeout_s: float = 10.0

    @property
    def target(self) -> str:
        return redact_url(self.url)

    def secrets(self) -> list[str]:
        # The path too: chat webhooks keep their token there, and http.client quotes the path
        # alone in some errors (InvalidURL for a URL from a .env file that kept a comment or a space).
        parts = urlsplit(self.url)
        bare = urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, parts.query, ""))
        path = parts.path if parts.path.strip("/") else ""
        request_target = f"{path}?{parts.query}" if path and parts.query else ""
        pieces = (self.url, bare, request_target, path, parts.password, parts.username, parts.query, parts.fragment)
        return [s for s in pieces if s]

    def deliver(self, note: Notification) -> None:
        import base64
        import urllib.request

        parts = urlsplit(self.url)
        headers = {"Content-Type": "application/json", "User-Agent": "lakeforge-alerts"}
        if parts.username is not None:
            token = f"{parts.username}:{parts.password or ''}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(token).decode()
        netloc = parts.netloc.rpartition("@")[2]
        url = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
        body = json.dumps(note.payload()).encode()
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
            if not 200 <= response.status < 300:
                raise OSError(f"HTTP {response.status} {response.reason}")


@dataclass(frozen=True)
class EmailChannel(Channel):
    """Send the batch as one plain-text email over SMTP (optional STARTTLS and login)."""

    kind: ClassVar[str] = "email"
    smtp_host: str
    to: tuple[str, ...]
    smtp_port: int = 25
    from_addr: str = "lakeforge@localhost"
    smtp_user: str | None = None
    smtp_password: str | None = field(default=None, repr=False)
    starttls: bool = False
    timeout_s: float = 10.0

    @property
    def target(self) -> str:
        return f"{', '.join(self.to)} via {self.smtp_host}:{self.smtp_port}"

    def secrets(self) -> list[str]:
        return [self.smtp_password] if self.smtp_password else []

    def deliver(self, note: Notification) -> None:
        import smtplib
        import ssl
        from email.message import EmailMessage
        from email.utils import formatdate, make_msgid

        message = EmailMessage()
        message["Subject"] = note.subject
        message["From"] = self.from_addr
        message["To"] = ", ".join(self.to)
        message["Date"] = formatdate(localtime=True)
        message["Message-ID"] = make_msgid(domain=self.from_addr.rpartition("@")[2] or None)
        message.set_content(note.text())
        with smtplib.SMTP(self.smtp_host, self.smtp_port, timeout=self.timeout_s) as smtp:
            if self.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if self.smtp_user:
                smtp.login(self.smtp_user, self.smtp_password or "")
            smtp.send_message(message)


CHANNELS: dict[str, type[Channel]] = {
    "log": LogChannel,
    "file": FileChannel,
    "webhook": WebhookChannel,
    "email": EmailChannel,
}
REQUIRED = {"file": ("path",), "webhook": ("url",), "email": ("smtp_host", "to")}


def channels_from_config(
    channels: Sequence[Mapping[str, Any] | str] | None, *, file: str | None = None, project_root: Path | None = None
) -> list[Channel]:
    """Validate ``monitor.alerts.channels`` and build the channels; every problem is reported at once.

    A plain string is short for ``{kind: <string>}``; a relative file path is under ``project_root``.
    """
    if channels is None:
        return []
    if isinstance(channels, str | bytes | Mapping) or not isinstance(channels, Sequence):
        raise ConfigError("must be a list of channels, e.g. [{kind: log}]", file=file, key=CHANNELS_KEY)
    problems: list[ConfigError] = []
    built: list[Channel] = []
    for i, raw in enumerate(channels):
        key = f"{CHANNELS_KEY}[{i}]"

        def report(where: str, message: str, key: str = key) -> None:
            problems.append(ConfigError(message, file=file, key=f"{key}{where}"))

        channel = _build(raw, report, project_root)
        if channel is not None:
            built.append(channel)
    if len(problems) == 1:
        raise problems[0]
    if problems:
        raise ConfigErrors(problems)
    return built


def _build(raw: Mapping[str, Any] | str, report: Report, project_root: Path | None) -> Channel | None:
    """One channel from its config, or None after reporting its problems."""
    node: Mapping[str, Any] = {"kind": raw} if isinstance(raw, str) else raw
    if not isinstance(node, Mapping):
        report("", f"must be a mapping with a kind ({', '.join(CHANNELS)}), got {raw!r}")
        return None
    kind = node.get("kind")
    if kind not in CHANNELS:
        shown = "missing" if kind is None else f"unknown channel kind '{kind}'{did_you_mean(str(kind), CHANNELS)}"
        report(".kind", f"{shown}; known kinds: {', '.join(CHANNELS)}")
        return None
    cls = CHANNELS[kind]
    what = f"{'an' if kind[0] in 'aeiou' else 'a'} {kind} channel"
    allowed = ["kind", *(f.name for f in fields(cls))]  # type: ignore[arg-type]
    bad: set[str] = set()

    def fail(name: str, message: str) -> None:
        bad.add(name)
        report(f".{name}", message)

    for name in map(str, node):
        if name not in allowed:
            fail(name, f"unknown key '{name}' for {what}{did_you_mean(name, allowed)}; allowed: {', '.join(allowed)}")
    values: dict[str, Any] = {}
    for name in allowed[1:]:
        try:
            value = node.get(name)
        except Exception as exc:  # an interpolation such as ${oc.env:…} that cannot be resolved
            fail(name, f"cannot be resolved: {str(exc).splitlines()[0]}")
            continue
        if value is not None and value != "":
            values[name] = value
        elif name in REQUIRED.get(kind, ()):
            fail(name, f"missing: {what} needs {name}")
    for name, value in values.items():
        problem = _CHECKS[name](value) if name in _CHECKS else None
        if problem:
            fail(name, problem)
    if bool(values.get("smtp_user")) != bool(values.get("smtp_password")):
        fail("smtp_password", "set smtp_user and smtp_password together (from the environment, not in the YAML)")
    if bad:
        return None
    if "to" in values:
        values["to"] = (values["to"],) if isinstance(values["to"], str) else tuple(values["to"])
    if "path" in values:
        path = Path(values["path"])
        values["path"] = path if path.is_absolute() or project_root is None else Path(project_root) / path
    return cls(**values)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_url(value: Any) -> str | None:
    """A problem with a webhook URL, described without echoing it (it may hold a token)."""
    if not isinstance(value, str):
        return "must be an http:// or https:// address"
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"must be an http:// or https:// address with a host, got '{redact_url(value)}'"
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        return f"has a bad port: '{parts.scheme}://{parts.hostname}:…'"
    return None


def _check_addresses(value: Any) -> str | None:
    addresses = [value] if isinstance(value, str) else value
    if not isinstance(addresses, Sequence) or not addresses:
        return "must be an email address or a list of them"
    wrong = [a for a in addresses if not (isinstance(a, str) and "@" in a)]
    return f"not an email address: {', '.join(repr(a) for a in wrong)}" if wrong else None


_CHECKS: dict[str, Callable[[Any], str | None]] = {
    "url": _check_url,
    "path": lambda v: None if isinstance(v, str | Path) else f"must be a file path, got {v!r}",
    "to": _check_addresses,
    "from_addr": lambda v: None if isinstance(v, str) and "@" in v else f"'{v}' is not an email address",
    "smtp_host": lambda v: None if isinstance(v, str) else f"must be a host name, got {v!r}",
    "smtp_port": lambda v: None if _is_int(v) and 0 < v < 65536 else f"must be a port number, got {v!r}",
    "smtp_user": lambda v: None if isinstance(v, str) else "must be a string",
    "smtp_password": lambda v: None if isinstance(v, str) else "must be a string",
    "starttls": lambda v: None if isinstance(v, bool) else f"must be true or false, got {v!r}",
    "timeout_s": lambda v: None if _is_number(v) and v > 0 else f"must be a number of seconds > 0, got {v!r}",
}


def send(
    channels: Sequence[Mapping[str, Any] | str | Channel] | None,
    events: Iterable[AlertEvent],
    *,
    model: str,
    run_date: DateLike,
    project_root: Path | None = None,
) -> list[ChannelResult]:
    """Send the events to notify, one message per channel; [] when there is nothing to send.

    ``channels`` is the ``monitor.alerts.channels`` config (validated first: a bad one raises
    ConfigError before anything is sent) or channels already built by :func:`channels_from_config`.
    Delivery failures never raise: they come back as results with ``ok=False`` and the error text.
    """
    built = list(channels or [])
    if not all(isinstance(c, Channel) for c in built):
        built = list(channels_from_config(channels, project_root=project_root))  # type: ignore[arg-type]
    due = tuple(e for e in events if e.notify)
    if not due:
        return []
    note = Notification(model=model, run_date=as_date(run_date), events=due)
    return [_deliver(channel, note) for channel in built if isinstance(channel, Channel)]


def _masked(text: str, secrets: Iterable[str]) -> str:
    """``text`` with each secret (longest first) replaced by ``***``; a secret starting or ending with a
    letter or digit only where it is not part of a longer word (a user name 'u' stays in 'found')."""
    for secret in sorted(set(secrets), key=len, reverse=True):
        before = r"(?<!\w)" if secret[:1].isalnum() else ""
        after = r"(?!\w)" if secret[-1:].isalnum() else ""
        text = re.sub(before + re.escape(secret) + after, "***", text)
    return text


def _deliver(channel: Channel, note: Notification) -> ChannelResult:
    """Deliver to one channel, turning any failure into a failed result and a warning."""
    try:
        channel.deliver(note)
    except Exception as exc:  # one broken channel must not fail monitoring
        error = _masked(f"{type(exc).__name__}: {exc}", channel.secrets())
        logger.warning(
            "alert channel %s (%s) failed for model '%s' on %s: %s",
            channel.kind,
            channel.target,
            note.model,
            note.run_date,
            error,
        )
        return ChannelResult(channel.kind, channel.target, ok=False, events=len(note.events), error=error)
    logger.info(
        "sent %d alert(s) for model '%s' to %s (%s)", len(note.events), note.model, channel.kind, channel.target
    )
    return ChannelResult(channel.kind, channel.target, ok=True, events=len(note.events))

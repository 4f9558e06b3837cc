"""Alert channels against real local servers: webhook (http.server), email (a tiny SMTP server), file, log."""

from __future__ import annotations

import base64
import email
import email.policy
import http.server
import json
import logging
import socket
import socketserver
import threading
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from lakeforge.errors import ConfigError, ConfigErrors
from lakeforge.monitoring.alerts import AlertEvent, AlertRule, evaluate
from lakeforge.monitoring.channels import (
    EmailChannel,
    Notification,
    WebhookChannel,
    channels_from_config,
    redact_url,
    send,
)

RUN_DATE = date(2013, 11, 2)
DRIFT = AlertRule("drift", "drift_share", above=0.3, retrain=True)
AUC = AlertRule("auc_floor", "performance.roc_auc", below=0.6, severity="critical")
LATE = AlertRule("late", "predictions_late", when_true=True, severity="info")


def _events(*rules: AlertRule) -> list[AlertEvent]:
    """drift opens, auc_floor opens, late resolves on RUN_DATE (only the given rules)."""
    history = [
        (date(2013, 11, 1), {"drift_share": 0.1, "predictions_late": True, "performance.roc_auc": 0.7}),
        (RUN_DATE, {"drift_share": 0.4, "predictions_late": False, "performance.roc_auc": 0.55}),
    ]
    return evaluate(list(rules), history, RUN_DATE)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _serve(server: socketserver.BaseServer) -> Iterator[Any]:
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=2)


class _HookHandler(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})  # type: ignore[attr-defined]
        self.send_response(self.server.status)  # type: ignore[attr-defined]
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the test output quiet."""


@pytest.fixture
def hook_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A webhook endpoint on 127.0.0.1 recording every POST; set ``.status`` to answer otherwise."""
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    server = http.server.HTTPServer(("127.0.0.1", 0), _HookHandler)
    server.requests = []  # type: ignore[attr-defined]
    server.status = 200  # type: ignore[attr-defined]
    yield from _serve(server)


class _SmtpHandler(socketserver.StreamRequestHandler):
    """Just enough SMTP for smtplib: EHLO (advertising AUTH PLAIN), AUTH, MAIL, RCPT, DATA, QUIT."""

    def reply(self, text: str) -> None:
        self.wfile.write(text.encode() + b"\r\n")

    def handle(self) -> None:
        server: Any = self.server
        self.reply("220 127.0.0.1 test SMTP")
        sender, recipients, data = "", [], []
        while raw := self.rfile.readline():
            line = raw.decode().rstrip("\r\n")
            verb = line.split(" ", 1)[0].upper()
            if verb == "EHLO":
                self.reply("250-127.0.0.1\r\n250 AUTH PLAIN")
            elif verb == "AUTH":
                _, user, password = base64.b64decode(line.split()[2]).decode().split("\0")
                server.logins.append(user)
                ok = (user, password) == server.credentials
                self.reply("235 2.7.0 accepted" if ok else "535 5.7.8 authentication failed")
            elif verb == "MAIL":
                sender = line.split(":", 1)[1].strip("<> ")
                self.reply("250 OK")
            elif verb == "RCPT":
                recipients.append(line.split(":", 1)[1].strip("<> "))
                self.reply("250 OK")
            elif verb == "DATA":
                self.reply("354 end with <CRLF>.<CRLF>")
                while (body := self.rfile.readline().decode()) != ".\r\n":
                    data.append(body[1:] if body.startswith("..") else body)
                server.received.append({"from": sender, "to": recipients, "data": "".join(data)})
                self.reply("250 OK queued")
            elif verb == "QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("250 OK" if verb in ("RSET", "NOOP", "HELO") else "502 not implemented")


@pytest.fixture
def smtp_server() -> Iterator[Any]:
    """An SMTP server on 127.0.0.1 keeping what it receives; it accepts the login alerts/s3cret-pw."""
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _SmtpHandler)
    server.daemon_threads = True
    server.received = []  # type: ignore[attr-defined]
    server.logins = []  # type: ignore[attr-defined]
    server.credentials = ("alerts", "s3cret-pw")  # type: ignore[attr-defined]
    yield from _serve(server)


class TestSend:
    def test_nothing_to_notify_sends_nothing(self, tmp_path: Path) -> None:
        rerun = evaluate([DRIFT], [(RUN_DATE, {"drift_share": 0.4})], RUN_DATE, _events(DRIFT))
        assert [(e.status, e.notify) for e in rerun] == [("opened", False)]
        config = [{"kind": "file", "path": "alerts.jsonl"}]
        assert send(config, rerun, model="m", run_date=RUN_DATE, project_root=tmp_path) == []
        assert send(["log"], [], model="m", run_date=RUN_DATE) == []
        assert not (tmp_path / "alerts.jsonl").exists()

    def test_subject_names_the_highest_severity_and_the_alerts(self) -> None:
        note = Notification("flight_delay", RUN_DATE, tuple(_events(DRIFT, AUC, LATE)))
        assert note.subject == (
            "[lakeforge] critical: 3 alerts for flight_delay (drift opened, auc_floor opened, late resolved)"
        )
        single = Notification("flight_delay", RUN_DATE, tuple(_events(DRIFT)))
        assert single.subject == "[lakeforge] warning: drift opened for flight_delay"
        assert single.lines() == [
            "[warning] drift opened: drift_share 0.40 > 0.30 (since 2013-11-02) (asks for a retrain)"
        ]

    def test_a_bad_channel_config_raises_before_anything_is_sent(self, tmp_path: Path) -> None:
        config = [{"kind": "file", "path": "alerts.jsonl"}, {"kind": "webhook"}]
        with pytest.raises(ConfigError, match=r"^monitor\.alerts\.channels\[1\]\.url: missing: a webhook channel"):
            send(config, _events(DRIFT), model="m", run_date=RUN_DATE, project_root=tmp_path)
        assert not (tmp_path / "alerts.jsonl").exists()


class TestFileAndLog:
    def test_file_channel_appends_one_json_line_per_event(self, tmp_path: Path) -> None:
        config = [{"kind": "file", "path": "reports/alerts.jsonl"}]
        first = send(config, _events(DRIFT, AUC), model="flight_delay", run_date=RUN_DATE, project_root=tmp_path)
        send(config, _events(LATE), model="flight_delay", run_date="2013-11-02", project_root=tmp_path)
        target = tmp_path / "reports" / "alerts.jsonl"
        assert [(r.kind, r.target, r.ok, r.events) for r in first] == [("file", str(target), True, 2)]
        rows = [json.loads(line) for line in target.read_text().splitlines()]
        assert [(r["model"], r["rule"], r["status"], r["run_date"]) for r in rows] == [
            ("flight_delay", "drift", "opened", "2013-11-02"),
            ("flight_delay", "auc_floor", "opened", "2013-11-02"),
            ("flight_delay", "late", "resolved", "2013-11-02"),
        ]
        assert rows[0]["episode_id"] == "drift:2013-11-02"
        assert rows[0]["message"] == "drift_share 0.40 > 0.30 (since 2013-11-02)"

    @pytest.mark.parametrize(
        ("rules", "level"),
        [((DRIFT,), logging.WARNING), ((DRIFT, AUC), logging.ERROR), ((LATE,), logging.INFO)],
    )
    def test_log_channel_logs_one_record_at_the_severity(
        self, caplog: pytest.LogCaptureFixture, rules: tuple[AlertRule, ...], level: int
    ) -> None:
        with caplog.at_level(logging.INFO, logger="lakeforge.alerts"):
            results = send(["log"], _events(*rules), model="flight_delay", run_date=RUN_DATE)
        assert [(r.kind, r.target, r.ok) for r in results] == [("log", "lakeforge.alerts", True)]
        records = [r for r in caplog.records if r.name == "lakeforge.alerts"]
        assert len(records) == 1
        assert records[0].levelno == level
        assert records[0].getMessage().startswith("[lakeforge] ")
        assert all(e.message in records[0].getMessage() for e in _events(*rules))


class TestWebhook:
    def test_posts_the_batch_as_json(self, hook_server: Any) -> None:
        port = hook_server.server_address[1]
        url = f"http://alerts:t0ken@127.0.0.1:{port}/hooks/abc?key=q5ecret"
        results = send(
            [{"kind": "webhook", "url": url, "timeout_s": 5}], _events(DRIFT, LATE), model="fd", run_date=RUN_DATE
        )
        assert [(r.kind, r.target, r.ok, r.events, r.error) for r in results] == [
            ("webhook", f"http://127.0.0.1:{port}/…", True, 2, None)
        ]
        (request,) = hook_server.requests
        assert request["path"] == "/hooks/abc?key=q5ecret"
        assert request["headers"]["Content-Type"] == "application/json"
        assert request["headers"]["Authorization"] == "Basic " + base64.b64encode(b"alerts:t0ken").decode()
        body = json.loads(request["body"])
        assert {k: body[k] for k in ("source", "model", "run_date", "severity", "subject")} == {
            "source": "lakeforge",
            "model": "fd",
            "run_date": "2013-11-02",
            "severity": "warning",
            "subject": "[lakeforge] warning: 2 alerts for fd (drift opened, late resolved)",
        }
        assert [(e["rule"], e["status"], e["notify"], e["retrain"]) for e in body["events"]] == [
            ("drift", "opened", True, True),
            ("late", "resolved", True, False),
        ]
        assert body["text"].splitlines()[1] == (
            "[warning] drift opened: drift_share 0.40 > 0.30 (since 2013-11-02) (asks for a retrain)"
        )

    def test_a_closed_port_is_a_failed_result_and_other_channels_still_deliver(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        url = f"http://user:pa55word@127.0.0.1:{_closed_port()}/services/T0/B0/xyzzy?token=q5ecret"
        config: list[dict[str, Any]] = [
            {"kind": "webhook", "url": url, "timeout_s": 2},
            {"kind": "file", "path": "a.jsonl"},
        ]
        with caplog.at_level(logging.INFO):
            results = send(config, _events(DRIFT), model="fd", run_date=RUN_DATE, project_root=tmp_path)
        assert [(r.kind, r.ok) for r in results] == [("webhook", False), ("file", True)]
        assert results[0].error is not None
        assert results[0].error.startswith("URLError: <urlopen error [Errno 111] Connection refused>")
        assert f"alert channel webhook ({results[0].target}) failed" in caplog.text
        assert "failed for model 'fd' on 2013-11-02: URLError" in caplog.text
        for secret in ("pa55word", "q5ecret", "xyzzy", "user:"):
            assert secret not in caplog.text
            assert secret not in repr(results)
        assert len((tmp_path / "a.jsonl").read_text().splitlines()) == 1

    def test_an_error_quoting_only_the_path_hides_the_token_in_it(self, caplog: pytest.LogCaptureFixture) -> None:
        # A URL from a .env file that kept its inline comment: http.client's InvalidURL quotes the path
        # (where chat webhooks keep their token) without scheme or host.
        url = f"http://u:pa55word@127.0.0.1:{_closed_port()}/services/T0/B0/xyzzy?sig=q5ecret # ops channel"
        with caplog.at_level(logging.WARNING):
            (result,) = send([{"kind": "webhook", "url": url}], _events(AUC), model="fd", run_date=RUN_DATE)
        assert result.error == "InvalidURL: URL can't contain control characters. '***' (found at least ' ')"
        for secret in ("pa55word", "q5ecret", "xyzzy", "T0/B0"):
            assert secret not in caplog.text
            assert secret not in repr(result)

    def test_an_http_error_status_is_a_failed_result(self, hook_server: Any) -> None:
        hook_server.status = 500
        url = f"http://127.0.0.1:{hook_server.server_address[1]}/hook"
        (result,) = send([{"kind": "webhook", "url": url}], _events(AUC), model="fd", run_date=RUN_DATE)
        assert (result.ok, result.error) == (False, "HTTPError: HTTP Error 500: Internal Server Error")

    def test_the_channel_repr_hides_the_url(self) -> None:
        channel = WebhookChannel(url="https://hooks.example.com/services/T0/B0/secret?x=1")
        assert "secret" not in repr(channel)
        assert channel.target == "https://hooks.example.com/…"

    @pytest.mark.parametrize(
        ("url", "shown"),
        [
            ("https://u:p@example.com:8443/a/b?token=t#f", "https://example.com:8443/…"),
            ("http://example.com", "http://example.com"),
            ("http://[::1]:9000/", "http://[::1]:9000"),
        ],
    )
    def test_redact_url_keeps_only_scheme_host_and_port(self, url: str, shown: str) -> None:
        assert redact_url(url) == shown


class TestEmail:
    def _config(self, port: int, **extra: Any) -> list[dict[str, Any]]:
        return [
            {
                "kind": "email",
                "smtp_host": "127.0.0.1",
                "smtp_port": port,
                "from_addr": "lakeforge@localhost",
                "to": ["ops@example.com", "ml@example.com"],
                "timeout_s": 5,
                **extra,
            }
        ]

    def test_sends_one_plain_text_message_with_the_event_lines(self, smtp_server: Any) -> None:
        port = smtp_server.server_address[1]
        results = send(self._config(port), _events(DRIFT, LATE), model="flight_delay", run_date=RUN_DATE)
        assert [(r.kind, r.target, r.ok) for r in results] == [
            ("email", f"ops@example.com, ml@example.com via 127.0.0.1:{port}", True)
        ]
        (received,) = smtp_server.received
        assert (received["from"], received["to"]) == ("lakeforge@localhost", ["ops@example.com", "ml@example.com"])
        message = email.message_from_string(received["data"], policy=email.policy.default)
        # A subject over 78 characters is folded right after "Subject:"; unfolded it reads the same.
        assert message["Subject"].lstrip() == (
            "[lakeforge] warning: 2 alerts for flight_delay (drift opened, late resolved)"
        )
        assert message["To"] == "ops@example.com, ml@example.com"
        assert message.get_content_type() == "text/plain"
        body = message.get_content()
        assert body.splitlines() == [
            "[warning] drift opened: drift_share 0.40 > 0.30 (since 2013-11-02) (asks for a retrain)",
            "[info] late resolved: predictions_late no longer true (episode since 2013-11-01); false on 2013-11-02",
            "",
            "model flight_delay, run date 2013-11-02",
        ]
        assert smtp_server.logins == []

    def test_logs_in_when_a_user_is_set(self, smtp_server: Any) -> None:
        config = self._config(smtp_server.server_address[1], smtp_user="alerts", smtp_password="s3cret-pw")
        (result,) = send(config, _events(DRIFT), model="fd", run_date=RUN_DATE)
        assert result.ok, result.error
        assert smtp_server.logins == ["alerts"]
        assert len(smtp_server.received) == 1

    def test_a_refused_login_is_a_failed_result_without_the_password(
        self, smtp_server: Any, caplog: pytest.LogCaptureFixture
    ) -> None:
        config = self._config(smtp_server.server_address[1], smtp_user="alerts", smtp_password="wrong-pw")
        channel = channels_from_config(config)[0]
        assert "wrong-pw" not in repr(channel)
        with caplog.at_level(logging.WARNING):
            (result,) = send([channel], _events(DRIFT), model="fd", run_date=RUN_DATE)
        assert not result.ok
        assert result.error == "SMTPAuthenticationError: (535, b'5.7.8 authentication failed')"
        assert "wrong-pw" not in caplog.text
        assert smtp_server.received == []

    def test_an_unreachable_server_is_a_failed_result(self) -> None:
        (result,) = send(self._config(_closed_port()), _events(DRIFT), model="fd", run_date=RUN_DATE)
        assert (result.ok, result.error) == (False, "ConnectionRefusedError: [Errno 111] Connection refused")

    def test_a_single_address_is_accepted(self) -> None:
        (channel,) = channels_from_config([{"kind": "email", "smtp_host": "localhost", "to": "ops@example.com"}])
        assert isinstance(channel, EmailChannel)
        assert (channel.to, channel.smtp_port, channel.from_addr) == (("ops@example.com",), 25, "lakeforge@localhost")


class TestChannelsFromConfig:
    @pytest.mark.parametrize(
        ("channel", "message"),
        [
            (
                {"kind": "webhok", "url": "http://x"},
                r"\[1\]\.kind: unknown channel kind 'webhok' \(did you mean "
                r"'webhook'\?\); known kinds: log, file, webhook, email$",
            ),
            ({"path": "a"}, r"\[1\]\.kind: missing; known kinds: log, file, webhook, email$"),
            ({"kind": "file"}, r"\[1\]\.path: missing: a file channel needs path$"),
            ({"kind": "email", "smtp_host": "h"}, r"\[1\]\.to: missing: an email channel needs to$"),
            ({"kind": "email", "smtp_host": "h", "to": ["ops"]}, r"\[1\]\.to: not an email address: 'ops'$"),
            (
                {"kind": "email", "smtp_host": "h", "to": "a@b", "smtp_port": 0},
                r"\[1\]\.smtp_port: must be a port number, got 0$",
            ),
            (
                {"kind": "email", "smtp_host": "h", "to": "a@b", "smtp_user": "u"},
                r"\[1\]\.smtp_password: set "
                r"smtp_user and smtp_password together \(from the environment, not in the YAML\)$",
            ),
            (
                {"kind": "webhook", "url": "http://x", "timeout": 5},
                r"\[1\]\.timeout: unknown key 'timeout' for a "
                r"webhook channel \(did you mean 'timeout_s'\?\); allowed: kind, url, timeout_s$",
            ),
            (
                {"kind": "webhook", "url": "http://x", "timeout_s": 0},
                r"\[1\]\.timeout_s: must be a number of seconds > 0, got 0$",
            ),
            ({"kind": "log", "level": "info"}, r"\[1\]\.level: unknown key 'level' for a log channel; allowed: kind$"),
            (["log"], r"\[1\]: must be a mapping with a kind \(log, file, webhook, email\), got \['log'\]$"),
        ],
    )
    def test_each_problem_names_the_channel_and_what_is_allowed(self, channel: Any, message: str) -> None:
        with pytest.raises(ConfigError, match=r"^conf/monitor/m\.yaml: monitor\.alerts\.channels" + message):
            channels_from_config(["log", channel], file="conf/monitor/m.yaml")

    def test_a_bad_webhook_url_is_reported_without_its_secrets(self) -> None:
        with pytest.raises(
            ConfigError,
            match=r"^monitor\.alerts\.channels\[0\]\.url: must be an http:// or "
            r"https:// address with a host, got 'ftp://example\.com/…'$",
        ) as caught:
            channels_from_config([{"kind": "webhook", "url": "ftp://me:pw123@example.com/x?token=abc"}])
        assert "pw123" not in str(caught.value)
        assert "abc" not in str(caught.value)

    def test_every_problem_is_reported_at_once(self) -> None:
        with pytest.raises(
            ConfigErrors,
            match=r"^2 config problem\(s\):\nmonitor\.alerts\.channels\[0\]\.kind: "
            r".*\nmonitor\.alerts\.channels\[1\]\.url: missing",
        ):
            channels_from_config([{"kind": "sms"}, {"kind": "webhook"}])

    def test_channels_must_be_a_list(self) -> None:
        with pytest.raises(ConfigError, match=r"^monitor\.alerts\.channels: must be a list of channels, e\.g\. "):
            channels_from_config({"kind": "log"})  # type: ignore[arg-type]

    def test_relative_file_paths_are_under_the_project_root(self, tmp_path: Path) -> None:
        channels = channels_from_config(
            ["log", {"kind": "file", "path": "reports/a.jsonl"}, {"kind": "file", "path": "/var/a.jsonl"}],
            project_root=tmp_path,
        )
        assert [c.target for c in channels] == ["lakeforge.alerts", str(tmp_path / "reports/a.jsonl"), "/var/a.jsonl"]
        assert channels_from_config(None) == []

    def test_omegaconf_nodes_and_env_interpolation_work(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from omegaconf import OmegaConf

        node = OmegaConf.create(
            [
                {"kind": "webhook", "url": "${oc.env:LF_TEST_WEBHOOK}", "timeout_s": 5},
                {"kind": "email", "smtp_host": "127.0.0.1", "to": ["ops@example.com"]},
            ]
        )
        monkeypatch.setenv("LF_TEST_WEBHOOK", "https://hooks.example.com/T0/secret")
        webhook, mail = channels_from_config(node)
        assert (webhook.target, mail.target) == ("https://hooks.example.com/…", "ops@example.com via 127.0.0.1:25")
        monkeypatch.delenv("LF_TEST_WEBHOOK")
        with pytest.raises(
            ConfigError,
            match=r"^monitor\.alerts\.channels\[0\]\.url: cannot be resolved: "
            r".*Environment variable 'LF_TEST_WEBHOOK' not found",
        ):
            channels_from_config(node)

    def test_an_empty_recipient_list_is_one_problem(self) -> None:
        with pytest.raises(
            ConfigError,
            match=r"^monitor\.alerts\.channels\[0\]\.to: must be an email address or a "
            r"list of them$",
        ):
            channels_from_config([{"kind": "email", "smtp_host": "h", "to": []}])

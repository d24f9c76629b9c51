"""Alert delivery: an HTTP webhook and e-mail over SMTP (STARTTLS or SSL), each retried with
backoff. Delivery never raises: a lost alert is logged, and the run's own result stands.

The webhook URL (it carries the trigger's signature or token) and the SMTP password are
secrets: logs name the webhook by its host only, and every message is scrubbed of both."""

from __future__ import annotations

import os
import smtplib
import ssl
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from typing import Any
from urllib.parse import urlsplit

import requests
from dagster import ConfigurableResource
from pydantic import Field

from spotify_assets.alerts.message import Alert
from spotify_assets.databricks_jobs.task import SECRET_KEYS

RETRYABLE_HTTP = {408, 425, 429, 500, 502, 503, 504}
MAX_RETRY_AFTER_SECONDS = 60.0
# Other secrets a message could quote (a driver's error echoing its URL, say): scrubbed too.
# The ones a Databricks job refers to by secret scope, and those the orchestrator alone holds.
OTHER_SECRET_VARIABLES = (
    *SECRET_KEYS,
    "SPARK_CONNECT_URL",
    "DATABRICKS_TOKEN",
    "DAGSTER_POSTGRES_URL",
)


class Transient(Exception):
    """A failure worth another attempt (connection refused, HTTP 503, SMTP 4xx)."""


class Permanent(Exception):
    """A failure another attempt cannot fix (HTTP 404, a refused login, a bad certificate)."""


@dataclass(frozen=True)
class Delivery:
    channel: str
    delivered: bool
    attempts: int
    detail: str  # the last failure, scrubbed; "" when delivered


class AlertChannels(ConfigurableResource):
    """The alert channels, configured by ALERT_* variables; none configured sends nothing."""

    webhook_url: str = Field(default="", description="a secret: set from ALERT_WEBHOOK_URL")
    webhook_format: str = "logic_app"
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_security: str = "starttls"
    smtp_username: str = ""
    smtp_password: str = Field(default="", description="a secret: from ALERT_SMTP_PASSWORD")
    email_from: str = ""
    email_to: list[str] = []
    ui_url: str = "http://127.0.0.1:3000"
    attempts: int = 4
    retry_seconds: float = 2.0
    timeout_seconds: float = 10.0
    # All attempts of one alert on one channel end within this: a sensor's tick has 60 s.
    budget_seconds: float = 40.0

    @property
    def configured(self) -> bool:
        return bool(self.webhook_url or (self.smtp_host and self.email_to))

    def send(self, alert: Alert, log: Any) -> list[Delivery]:
        """Every configured channel at once; each retried on its own."""
        jobs: list[tuple[str, Callable[[float], None]]] = []
        if self.webhook_url:
            host = urlsplit(self.webhook_url).hostname or "?"
            body = self._scrubbed(alert.body(self.webhook_format))
            jobs.append((f"webhook ({host})", lambda timeout: self._post(body, timeout)))
        if self.smtp_host and self.email_to:
            jobs.append((f"e-mail ({self.smtp_host})", lambda timeout: self._mail(alert, timeout)))
        with ThreadPoolExecutor(max_workers=max(1, len(jobs))) as pool:
            futures = [pool.submit(self._with_retries, name, fn, alert, log) for name, fn in jobs]
            return [f.result() for f in futures]

    def scrub(self, text: str) -> str:
        """`text` without any secret value (the webhook URL and its path, passwords, tokens)."""
        secrets = [self.webhook_url, self.smtp_password]
        if self.webhook_url:
            parts = urlsplit(self.webhook_url)
            secrets += [parts.path, parts.query]
        secrets += [os.environ.get(name, "") for name in OTHER_SECRET_VARIABLES]
        for secret in sorted((s for s in secrets if len(s) >= 4), key=len, reverse=True):
            text = text.replace(secret, "<secret>")
        return text

    def _scrubbed(self, value: Any) -> Any:
        """`value` (an alert's body) with every string scrubbed: an error message may quote a
        URL or a connection string."""
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, dict):
            return {k: self._scrubbed(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._scrubbed(v) for v in value]
        return value

    def _with_retries(
        self, channel: str, send: Callable[[float], None], alert: Alert, log
    ) -> Delivery:
        what = f"{alert.kind} alert for run {alert.run_id}"
        detail = ""
        deadline = time.monotonic() + self.budget_seconds
        attempt = 0
        while attempt < self.attempts:
            attempt += 1
            try:
                send(max(0.5, min(self.timeout_seconds, deadline - time.monotonic())))
            except Permanent as exc:
                detail = self.scrub(str(exc))
                log.error(f"{what} not delivered by {channel}: {detail} (not retried)")
                return Delivery(channel, False, attempt, detail)
            except Exception as exc:  # a transient failure, or one we cannot classify
                detail = self.scrub(_describe(exc))
                if attempt == self.attempts:
                    break
                wait = self.retry_seconds * 2 ** (attempt - 1)
                if isinstance(exc, Transient) and exc.args[1:]:
                    wait = max(wait, min(float(exc.args[1]), MAX_RETRY_AFTER_SECONDS))
                if time.monotonic() + wait >= deadline:
                    log.error(
                        f"{what} not delivered by {channel} within {self.budget_seconds:g} s "
                        f"({attempt} attempts): {detail}"
                    )
                    return Delivery(channel, False, attempt, detail)
                log.warning(
                    f"{what}: {channel} attempt {attempt} of {self.attempts} failed: {detail}; "
                    f"retrying in {wait:g} s"
                )
                time.sleep(wait)
            else:
                log.info(f"{what} delivered by {channel} (attempt {attempt})")
                return Delivery(channel, True, attempt, "")
        log.error(f"{what} not delivered by {channel} after {self.attempts} attempts: {detail}")
        return Delivery(channel, False, self.attempts, detail)

    def _post(self, body: dict[str, Any], timeout: float) -> None:
        try:
            response = requests.post(self.webhook_url, json=body, timeout=timeout)
        except requests.RequestException as exc:
            # The exception's text quotes the URL: only its kind is kept.
            raise Transient(f"{type(exc).__name__} (no answer from the webhook)") from None
        if response.ok:
            return
        reason = f"HTTP {response.status_code} {response.reason}"
        if response.status_code in RETRYABLE_HTTP:
            retry_after = response.headers.get("Retry-After", "")
            raise Transient(reason, *([retry_after] if retry_after.isdigit() else []))
        raise Permanent(f"the webhook refused the alert: {reason}")

    def _mail(self, alert: Alert, timeout: float) -> None:
        # No folding of the subject (Python folds a long first word onto a line of its own, and
        # readers then show it with a leading space): SMTP allows 998 characters a line.
        message = EmailMessage(policy=SMTP_POLICY.clone(max_line_length=998))
        message["Subject"] = alert.title
        message["From"] = self.email_from
        message["To"] = ", ".join(self.email_to)
        message.set_content(self.scrub(alert.text()))
        context = ssl.create_default_context()
        try:
            if self.smtp_security == "ssl":
                server: smtplib.SMTP = smtplib.SMTP_SSL(
                    self.smtp_host, self.smtp_port, timeout=timeout, context=context
                )
            else:
                server = smtplib.SMTP(self.smtp_host, self.smtp_port, timeout=timeout)
            with server:
                if self.smtp_security == "starttls":
                    server.starttls(context=context)
                if self.smtp_username:
                    server.login(self.smtp_username, self.smtp_password)
                server.send_message(message)
        except ssl.SSLCertVerificationError as exc:
            raise Permanent(
                f"the SMTP server's certificate is not trusted: {exc.verify_message}"
            ) from None
        except smtplib.SMTPAuthenticationError as exc:
            raise Permanent(f"the SMTP server refused the login: {exc.smtp_code}") from None
        except smtplib.SMTPNotSupportedError as exc:
            raise Permanent(f"the SMTP server does not offer it: {exc}") from None
        except smtplib.SMTPResponseException as exc:
            reason = f"SMTP {exc.smtp_code} {_decode(exc.smtp_error)}"
            if 400 <= exc.smtp_code < 500:
                raise Transient(reason) from None
            raise Permanent(f"the SMTP server refused the alert: {reason}") from None
        except smtplib.SMTPRecipientsRefused as exc:
            raise Permanent(
                f"the SMTP server refused the recipients {sorted(exc.recipients)}"
            ) from None


def _describe(exc: Exception) -> str:
    if isinstance(exc, Transient):
        return str(exc.args[0])
    return f"{type(exc).__name__}: {exc}"


def _decode(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value

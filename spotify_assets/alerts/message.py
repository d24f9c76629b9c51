"""An alert's content, and its renderings: plain text (e-mail, Slack) and JSON bodies (an Azure
Logic App HTTP trigger, a Teams workflow's Adaptive Card, a Slack incoming webhook)."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

MAX_ERROR_CHARS = 600  # an error summary, not a stack trace: the run's page has the rest


@dataclass(frozen=True)
class FailedStep:
    step: str
    error: str  # the error's class and first lines


@dataclass(frozen=True)
class FailedCheck:
    asset: str  # bronze/dim_user
    check: str
    severity: str  # ERROR | WARN
    counts: dict[str, int] = field(default_factory=dict)  # the evaluation's numeric metadata

    def line(self) -> str:
        counts = ", ".join(f"{k}={v}" for k, v in self.counts.items())
        return f"{self.asset}:{self.check} ({self.severity})" + (f": {counts}" if counts else "")


@dataclass(frozen=True)
class Alert:
    """One incident (or one success), with what its reader needs to act."""

    kind: str  # run_failure | run_success | check_failure
    status: str  # FAILURE | SUCCESS | CHECK FAILED
    job: str
    run_id: str
    run_url: str
    assets: tuple[str, ...]
    partitions: str  # 2026-01-01, or 2026-01-01..2026-01-03, or "" (unpartitioned)
    failed_steps: tuple[FailedStep, ...] = ()
    failed_checks: tuple[FailedCheck, ...] = ()
    error: str = ""  # the run's own failure message when no step failed (e.g. a lost worker)

    @property
    def title(self) -> str:
        what = {
            "run_failure": "run failed",
            "run_success": "run succeeded",
            "check_failure": f"{len(self.failed_checks)} asset check(s) failed",
        }[self.kind]
        window = f" for {self.partitions}" if self.partitions else ""
        return f"[Spotify Lakehouse] {self.job}: {what}{window}"

    def text(self) -> str:
        lines = [
            self.title,
            "",
            f"Status: {self.status}",
            f"Job: {self.job}",
            f"Partitions: {self.partitions or '(not partitioned)'}",
            f"Assets: {', '.join(self.assets) or '(none)'}",
            f"Run: {self.run_url}",
        ]
        if self.failed_steps:
            lines += ["", "Failed steps:"]
            lines += [f"- {s.step}: {s.error}" for s in self.failed_steps]
        elif self.error:
            lines += ["", f"Error: {self.error}"]
        if self.failed_checks:
            lines += ["", "Failed checks:"]
            lines += [f"- {c.line()}" for c in self.failed_checks]
        return "\n".join(lines) + "\n"

    def body(self, style: str) -> dict[str, Any]:
        """The webhook's JSON body in `style`: logic_app, slack or teams."""
        if style == "slack":
            return {"text": self.text()}
        if style == "teams":
            return _adaptive_card(self)
        return {"title": self.title, "text": self.text(), **asdict(self)}


def summarise_error(cls_name: str | None, message: str) -> str:
    """`Class: first lines of the message`, cut to MAX_ERROR_CHARS."""
    text = " ".join(message.strip().split())
    if cls_name:
        # Messages often start with the class's qualified name: keep the short one only.
        text = re.sub(rf"^[\w.]*\b{re.escape(cls_name)}: ", "", text)
        text = f"{cls_name}: {text}"
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 3] + "..."


def _adaptive_card(alert: Alert) -> dict[str, Any]:
    """A message a Teams "Post to a channel when a webhook request is received" workflow posts."""
    facts = [
        {"title": "Status", "value": alert.status},
        {"title": "Partitions", "value": alert.partitions or "(not partitioned)"},
        {"title": "Assets", "value": ", ".join(alert.assets) or "(none)"},
    ]
    details = [f"{s.step}: {s.error}" for s in alert.failed_steps]
    details += [c.line() for c in alert.failed_checks]
    if alert.error and not alert.failed_steps:
        details.append(alert.error)
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": alert.title, "weight": "Bolder", "wrap": True},
        {"type": "FactSet", "facts": facts},
        *({"type": "TextBlock", "text": d, "wrap": True} for d in details),
    ]
    return {
        "type": "message",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "body": body,
                    "actions": [
                        {"type": "Action.OpenUrl", "title": "Open the run", "url": alert.run_url}
                    ],
                },
            }
        ],
    }

"""Alerts from real runs to a real HTTP receiver and a real SMTP server (STARTTLS and login):
a failed run, a check that starts failing, a success; retries; one alert per incident; no
secret anywhere the runs and alerts leave something."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path

import pytest
from dagster import (
    AssetKey,
    DagsterEventType,
    DagsterInstance,
    build_run_status_sensor_context,
)
from sqlalchemy import insert

from spotify_assets.alerts.channels import AlertChannels
from spotify_assets.alerts.message import Alert
from spotify_assets.catalog import SOURCE_BY_ENTITY
from spotify_assets.defs import bronze_checks
from spotify_assets.defs.alerts import ALERT_TAG, build_alert_sensors
from spotify_assets.materialize import materialize_range
from spotify_assets.resources import alerts_for
from spotify_assets.source import simulator
from spotify_assets.source.resource import SourceDatabase
from spotify_assets_tests.alert_peers import http_receiver, smtp_server
from spotify_assets_tests.conftest import START, make_settings

DAY1 = date(2026, 1, 1)
# Recognisable fake secrets: none may appear in a log, a tag, an event or an alert.
HOOK_SIGNATURE = "sig-Zq81hookSECRET"
SMTP_PASSWORD = "smtp-pw-Kx52SECRET"
SMTP_USER = "lakehouse-alerts@example.com"
CLIENT_SECRET = "spotify-client-Qz93SECRET"
UI = "http://dagster.example.com:3000"


@pytest.fixture(scope="module")
def peers(tmp_path_factory):
    folder = tmp_path_factory.mktemp("alert-peers")
    hook = f"/workflows/a1b2/triggers/manual/invoke?sig={HOOK_SIGNATURE}"
    with http_receiver(hook) as receiver, smtp_server(folder, SMTP_USER, SMTP_PASSWORD) as mail:
        yield receiver, mail


@pytest.fixture(scope="module")
def lake(tmp_path_factory, spark, peers):
    receiver, mail = peers
    env = {
        "ALERT_WEBHOOK_URL": receiver.url,
        "ALERT_SMTP_HOST": "127.0.0.1",
        "ALERT_SMTP_PORT": str(mail.port),
        "ALERT_SMTP_USERNAME": SMTP_USER,
        "ALERT_SMTP_PASSWORD": SMTP_PASSWORD,
        "ALERT_EMAIL_TO": "oncall@example.com, data-team@example.com",
        "ALERT_ON_SUCCESS": "on",
        "DAGSTER_UI_URL": UI,
        "ALERT_RETRY_SECONDS": "0.05",
        # The self-signed certificate of the test's SMTP server is the one trusted.
        "SSL_CERT_FILE": str(mail.cert_file),
    }
    with pytest.MonkeyPatch.context() as mp:
        for name, value in env.items():
            mp.setenv(name, value)
        settings = make_settings(tmp_path_factory.mktemp("alerts"), **env)
        source = SourceDatabase(url=settings.source_db_url)
        simulator.seed(source.engine, seed_value=5, start=START, days=3, echo=lambda _: None)
        with DagsterInstance.ephemeral() as instance:
            yield settings, source, instance


class Logs:
    """What the test's code logged: Python logging, and Dagster's console log (the sensors'
    context.log), which writes to the process's stderr."""

    def __init__(self, caplog, capfd) -> None:
        self.caplog, self.capfd, self.console = caplog, capfd, ""

    @property
    def text(self) -> str:
        out = self.capfd.readouterr()
        self.console += out.out + out.err
        return self.caplog.text + self.console


@pytest.fixture
def log(caplog, capfd) -> Logs:
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.WARNING, logger="mail.log")  # aiosmtpd's session transcript
    return Logs(caplog, capfd)


def evaluate(lake, sensor_name: str, run_id: str, check_severity: str | None = None):
    """One evaluation of an alert sensor for a finished run, as the daemon does it."""
    settings, _, instance = lake
    alert_settings = settings.alerts
    if check_severity:
        alert_settings = replace(alert_settings, check_severity=check_severity)
    sensor = next(s for s in build_alert_sensors(alert_settings) if s.name == sensor_name)
    run = instance.get_run_by_id(run_id)
    assert run is not None
    status_event = {
        "run_failure_alerts": DagsterEventType.RUN_FAILURE,
    }.get(sensor_name, DagsterEventType.RUN_SUCCESS)
    event = instance.all_logs(run_id, of_type=status_event)[-1].dagster_event
    assert event is not None
    context = build_run_status_sensor_context(
        sensor_name=sensor_name,
        dagster_event=event,
        dagster_instance=instance,
        dagster_run=run,
        resources={"alerts": alerts_for(settings)},
    )
    if sensor_name == "run_failure_alerts":
        return sensor(context.for_run_failure())
    return sensor(context)


def run_assets(lake, *keys: str, day: date = DAY1):
    settings, _, instance = lake
    selection = [AssetKey.from_user_string(k) for k in keys]
    return materialize_range(
        settings, day, day, instance=instance, say=lambda _: None, selection=selection
    )


def no_secret_anywhere(lake, receiver, mail, log) -> None:
    """Nothing the runs and the alerts left behind holds a secret."""
    _, _, instance = lake
    texts = [str(r) for r in receiver.requests] + [m.as_string() for m in mail.messages]
    texts.append(log.text)
    for run in instance.get_runs():
        texts.append(str(run.tags))
        texts += [str(r) for r in instance.all_logs(run.run_id)]
    for secret in (HOOK_SIGNATURE, SMTP_PASSWORD):
        leaks = [t for t in texts if secret in t]
        assert not leaks, f"{secret} found in {leaks[0][:300]}"


def test_a_failed_run_sends_one_alert_by_webhook_and_by_mail(lake, peers, log):
    receiver, mail = peers
    receiver.requests.clear(), mail.messages.clear()
    settings = lake[0]
    # Silver before bronze exists: the step fails on the missing bronze table.
    result = run_assets(lake, "silver/dim_date")
    assert not result.success
    run_id = result.run_id

    assert evaluate(lake, "run_failure_alerts", run_id) is None
    [body] = receiver.requests
    assert body["kind"] == "run_failure"
    assert body["status"] == "FAILURE"
    assert body["title"] == "[Spotify Lakehouse] lakehouse_job: run failed for 2026-01-01"
    assert body["job"] == "lakehouse_job"
    assert body["partitions"] == "2026-01-01"
    assert body["assets"] == ["silver/dim_date"]
    assert body["run_url"] == f"{UI}/runs/{run_id}"
    [step] = body["failed_steps"]
    assert step["step"] == "silver__dim_date"
    # The root cause, not Dagster's wrapper around it.
    assert step["error"].startswith("AnalysisException: [PATH_NOT_FOUND] Path does not exist: ")
    assert f"{settings.lakehouse_root}/bronze/dim_date" in step["error"]
    assert body["failed_checks"] == []

    [message] = mail.messages
    assert message["Subject"] == body["title"]
    assert message["To"] == "oncall@example.com, data-team@example.com"
    assert message["From"] == SMTP_USER
    assert mail.sessions[-1] == {"tls": True, "login": SMTP_USER}
    text = message.get_content()
    assert f"Run: {UI}/runs/{run_id}" in text
    assert "- silver__dim_date: " in text

    # The daemon evaluates the same run again (a restart, a retried tick): nothing more is sent.
    # (A sensor returns None whatever happens: anything else would end its tick at this run.)
    assert evaluate(lake, "run_failure_alerts", run_id) is None
    assert f"run {run_id} already sent its run_failure alert" in log.text
    assert len(receiver.requests) == 1 and len(mail.messages) == 1
    _, _, instance = lake
    tags = instance.get_run_by_id(run_id).tags
    assert tags[f"{ALERT_TAG}/run_failure"] == (
        "webhook (127.0.0.1): delivered, e-mail (127.0.0.1): delivered"
    )
    no_secret_anywhere(lake, receiver, mail, log)


def test_checks_alert_once_per_incident_and_a_failed_check_fails_its_run_alert(
    lake, peers, log, monkeypatch
):
    receiver, mail = peers
    receiver.requests.clear(), mail.messages.clear()
    _, source, _ = lake
    # Bronze for day 1 of a 3-day source: it succeeds, and its freshness check (WARN) fails.
    first = run_assets(lake, "bronze/dim_user")
    assert first.success

    # The default threshold is ERROR: a WARN failure sends no check alert.
    assert evaluate(lake, "check_failure_alerts", first.run_id) is None
    assert f"no check of run {first.run_id} started failing" in log.text
    assert receiver.requests == []

    # With ALERT_CHECK_SEVERITY=warn it does, with the check's counts.
    assert evaluate(lake, "check_failure_alerts", first.run_id, check_severity="warn") is None
    [body] = receiver.requests
    assert body["title"] == (
        "[Spotify Lakehouse] lakehouse_job: 1 asset check(s) failed for 2026-01-01"
    )
    assert body["status"] == "CHECK FAILED"
    assert body["failed_checks"] == [
        {
            "asset": "bronze/dim_user",
            "check": "caught_up_with_source",
            "severity": "WARN",
            "counts": {"lag_days": 2},
        }
    ]

    # The success alert of the same run (ALERT_ON_SUCCESS=on) is a different message.
    assert evaluate(lake, "run_success_alerts", first.run_id) is None
    success = receiver.requests[-1]
    assert success["status"] == "SUCCESS"
    assert success["title"] == "[Spotify Lakehouse] lakehouse_job: run succeeded for 2026-01-01"
    assert success["assets"] == ["bronze/dim_user"]
    assert [m["Subject"] for m in mail.messages] == [body["title"], success["title"]]

    # The same window again: the check still fails, which is the same incident: no alert.
    second = run_assets(lake, "bronze/dim_user")
    assert second.success
    assert evaluate(lake, "check_failure_alerts", second.run_id, check_severity="warn") is None
    assert f"no check of run {second.run_id} started failing" in log.text
    assert len(receiver.requests) == 2

    # A source row committed after bronze's extraction read the window: the reconciliation
    # check (ERROR, blocking) finds it missing and fails the run; the run's failure alert names
    # the check and its counts.
    users = source.table(SOURCE_BY_ENTITY["dim_user"])
    reread = bronze_checks.stage_source_pairs

    def a_row_commits_first(source_db, table, *rest):
        with source_db.engine.begin() as conn:
            conn.execute(
                insert(users).values(
                    user_id=999_001,
                    user_name="late",
                    country="SE",
                    subscription_type="Free",
                    start_date=DAY1,
                    end_date=None,
                    updated_at=datetime(2026, 1, 1, 12),
                )
            )
        monkeypatch.setattr(bronze_checks, "stage_source_pairs", reread)
        return reread(source_db, table, *rest)

    monkeypatch.setattr(bronze_checks, "stage_source_pairs", a_row_commits_first)
    failed = run_assets(lake, "bronze/dim_user")
    assert not failed.success
    assert evaluate(lake, "run_failure_alerts", failed.run_id) is None
    alert = receiver.requests[-1]
    assert alert["status"] == "FAILURE"
    [check] = alert["failed_checks"]
    assert check["check"] == "reconciles_with_source"
    assert check["severity"] == "ERROR"
    assert check["counts"]["missing_rows"] == 1
    assert check["counts"]["windows_checked"] == 1
    no_secret_anywhere(lake, receiver, mail, log)


def test_delivery_is_retried_and_a_lost_alert_never_raises(lake, peers, log):
    receiver, _ = peers
    receiver.requests.clear(), receiver.answers.clear()
    channels = AlertChannels(webhook_url=receiver.url, ui_url=UI, retry_seconds=0.05)
    alert = Alert("run_failure", "FAILURE", "lakehouse_job", "r1", f"{UI}/runs/r1", (), "")

    receiver.failures = 2  # the receiver is overloaded twice, then takes the alert
    [delivery] = channels.send(alert, logging.getLogger("alerts"))
    assert (delivery.delivered, delivery.attempts) == (True, 3)
    assert receiver.answers == [503, 503, 202]
    assert len(receiver.requests) == 1
    assert "webhook (127.0.0.1) attempt 1 of 4 failed: HTTP 503 Service Unavailable" in log.text

    # Throttled with Retry-After: 1: honoured (it is longer than the 0.05 s backoff).
    receiver.failures, receiver.failure_status = 1, 429
    [delivery] = channels.send(alert, logging.getLogger("alerts"))
    assert (delivery.delivered, delivery.attempts) == (True, 2)
    assert "attempt 1 of 4 failed: HTTP 429 Too Many Requests; retrying in 1 s" in log.text
    receiver.failure_status = 503

    # One alert's attempts end within the budget (a sensor's tick has 60 s in all).
    receiver.failures = 9
    hurried = channels.model_copy(update={"retry_seconds": 0.2, "budget_seconds": 0.3})
    [delivery] = hurried.send(alert, logging.getLogger("alerts"))
    assert (delivery.delivered, delivery.attempts) == (False, 2)
    assert "not delivered by webhook (127.0.0.1) within 0.3 s (2 attempts)" in log.text
    receiver.failures = 0

    # Secret values an error may quote are scrubbed from what is sent.
    quoted = Alert(
        "run_failure", "FAILURE", "lakehouse_job", "r2", f"{UI}/runs/r2", (), "",
        error=f"login refused for {CLIENT_SECRET}",
    )  # fmt: skip
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SPOTIFY_CLIENT_SECRET", CLIENT_SECRET)
        [delivery] = channels.send(quoted, logging.getLogger("alerts"))
    assert delivery.delivered
    assert receiver.requests[-1]["error"] == "login refused for <secret>"
    assert CLIENT_SECRET not in str(receiver.requests[-1])

    # A refusal (wrong path: 404) is not retried.
    wrong = channels.model_copy(update={"webhook_url": receiver.url.replace("invoke", "nope")})
    [delivery] = wrong.send(alert, logging.getLogger("alerts"))
    assert (delivery.delivered, delivery.attempts) == (False, 1)
    assert delivery.detail == "the webhook refused the alert: HTTP 404 Not Found"

    # Nobody listening: every attempt fails, the alert is logged as lost, nothing raises.
    down = channels.model_copy(
        update={"webhook_url": "http://127.0.0.1:9/hook?sig=" + HOOK_SIGNATURE}
    )
    [delivery] = down.send(alert, logging.getLogger("alerts"))
    assert (delivery.delivered, delivery.attempts) == (False, 4)
    assert delivery.detail == "ConnectionError (no answer from the webhook)"
    assert (
        "run_failure alert for run r1 not delivered by webhook (127.0.0.1) after 4 attempts: "
        "ConnectionError (no answer from the webhook)"
    ) in log.text
    assert HOOK_SIGNATURE not in log.text


# Every secret setting at once, recognisable (issue 10): the alert peers' two above, and these.
MORE_SECRETS = {
    "SPOTIFY_CLIENT_ID": "spotify-id-Vb20SECRET",
    "SPOTIFY_CLIENT_SECRET": CLIENT_SECRET,
    "AZURE_STORAGE_ACCOUNT_KEY": "account-key-Lm47SECRET",
    "AZURE_STORAGE_SAS_TOKEN": "sv=2024&sig=sas-Tr66SECRET",
    "AZURE_CLIENT_SECRET": "client-secret-Hp09SECRET",
    "AZURE_STORAGE_CONNECTION_STRING": "AccountKey=conn-Wd38SECRET",
}
SOURCE_PASSWORD = "pg-pw-Jn71SECRET"
# What the UI reads through GraphQL: runs (config, tags, every event and error), assets
# (descriptions, metadata) and resources (configured values).
METADATA = """metadataEntries { label description __typename
  ... on TextMetadataEntry { text } ... on JsonMetadataEntry { jsonString }
  ... on UrlMetadataEntry { url } ... on PathMetadataEntry { path }
  ... on MarkdownMetadataEntry { mdStr } }"""
UI_QUERY = """query($repository: RepositorySelector!) {
  runsOrError { ... on Runs { results { runId runConfigYaml tags { key value }
  eventConnection { events { __typename ... on MessageEvent { message }
    ... on ErrorEvent { error { message stack cause { message stack } } }
    ... on MaterializationEvent { $METADATA } ... on ObservationEvent { $METADATA }
    ... on ExecutionStepFailureEvent { error { message stack cause { message stack } } } } } } } }
  assetNodes { assetKey { path } description opNames $METADATA }
  allTopLevelResourceDetailsOrError(repositorySelector: $repository) {
    ... on ResourceDetailsList { results { name description
    configuredValues { key value type } } } } }""".replace("$METADATA", METADATA)


def test_no_secret_reaches_a_log_a_run_record_an_alert_an_error_or_the_ui(
    lake, peers, log, monkeypatch, tmp_path
):
    """Every secret set at once: a run that succeeds, and one whose source (a URL with a
    password) is unreachable; then their alerts. The secrets' values appear nowhere: not in the
    instance's runs, tags and events (errors included), the logs, the alerts sent, the lake's
    files, nor what the UI shows through GraphQL."""
    from dagster_graphql.test.utils import (
        define_out_of_process_context,
        execute_dagster_graphql,
        infer_repository_selector,
    )

    from spotify_assets.defs import policies

    receiver, mail = peers
    receiver.requests.clear(), mail.messages.clear()
    settings, source, _ = lake
    for name, value in MORE_SECRETS.items():
        monkeypatch.setenv(name, value)
    # An instance on disk, as `dagster dev` has: its files are scanned too, and the UI reads it.
    home = tmp_path / "dagster_home"
    home.mkdir()
    instance = DagsterInstance.local_temp(str(home))
    lake = (settings, source, instance)
    assert run_assets(lake, "bronze/dim_user", "bronze/dim_artist").success
    # Nothing listens on port 9; the source is retried, then the run fails naming it, masked.
    unreachable = f"postgresql+psycopg://lakehouse:{SOURCE_PASSWORD}@127.0.0.1:9/spotify"
    monkeypatch.setenv("SPOTIFY_SOURCE_DB_URL", unreachable)
    monkeypatch.setattr(policies, "FIRST_RETRY_SECONDS", 0.01)
    failing = (replace(settings, source_db_url=unreachable), *lake[1:])
    failed = run_assets(failing, "bronze/dim_user")
    assert not failed.success
    [error] = [e.event_specific_data.error for e in failed.all_events if e.is_step_failure]
    chain, current = [], error  # the error and its chain of causes
    while current is not None:
        chain.append(current.message)
        current = current.cause
    assert any(
        "source postgresql+psycopg://lakehouse:***@127.0.0.1:9/spotify (host 127.0.0.1) "
        "unreachable" in m
        for m in chain
    ), chain
    assert evaluate(lake, "run_failure_alerts", failed.run_id) is None
    assert receiver.requests and mail.messages

    texts = [str(r) for r in receiver.requests] + [m.as_string() for m in mail.messages]
    texts += [log.text, *chain]
    for run in instance.get_runs():
        texts += [str(run.tags), str(run.run_config)]
        texts += [str(r) for r in instance.all_logs(run.run_id)]
    texts += [
        p.read_bytes().decode("utf-8", "replace")
        for folder in (Path(settings.lakehouse_root), home)
        for p in folder.rglob("*")
        if p.is_file()
    ]
    assert any((home / "storage").rglob("*")), "the instance wrote nothing to disk"
    definitions = str(Path(__file__).parents[1] / "spotify_assets" / "definitions.py")
    with define_out_of_process_context(definitions, "defs", instance) as context:
        repository = infer_repository_selector(context)
        answer = execute_dagster_graphql(context, UI_QUERY, {"repository": repository})
    assert not answer.errors, answer.errors
    runs = answer.data["runsOrError"]["results"]
    assert {r["runId"] for r in runs} >= {failed.run_id}
    assert any(v["type"] == "ENV_VAR" for r in answer.data["allTopLevelResourceDetailsOrError"][
        "results"] for v in r["configuredValues"])  # fmt: skip
    ui = json.dumps(answer.data)
    texts.append(ui)
    # The scan reaches where a secret would be: the masked URL is in the events, the files of
    # the instance and what the UI shows.
    masked = "lakehouse:***@127.0.0.1:9"
    assert masked in ui and any(masked in t for t in texts[:-1])

    secrets = [HOOK_SIGNATURE, SMTP_PASSWORD, SOURCE_PASSWORD, *MORE_SECRETS.values()]
    leaks = {
        s: t[max(0, t.find(s) - 150) : t.find(s) + 50] for s in secrets for t in texts if s in t
    }
    assert leaks == {}

"""The alert sensors: a failed run, a successful run (when wanted), and asset checks that start
failing. One incident sends one alert:
- a failed run sends one alert that lists its failed steps and its failed checks (a blocking
  check that failed is part of the run's failure, not an alert of its own);
- a check alert is for the checks of a successful run that failed at ALERT_CHECK_SEVERITY or
  above and were not already failing before that run;
- each run is tagged with what was sent, so a sensor that evaluates a run again sends nothing.
"""

from dataclasses import replace

from dagster import (
    DagsterRunStatus,
    DefaultSensorStatus,
    RunFailureSensorContext,
    RunStatusSensorContext,
    SensorDefinition,
    run_failure_sensor,
    run_status_sensor,
)

from spotify_assets.alerts.channels import AlertChannels
from spotify_assets.alerts.collect import newly_failing, run_alert
from spotify_assets.alerts.message import Alert
from spotify_assets.settings import AlertSettings

ALERT_TAG = "spotify_lakehouse/alert"  # + /<kind>: what was sent for this run
INTERVAL_SECONDS = 15


def send_once(context: RunStatusSensorContext, alerts: AlertChannels, alert: Alert) -> str:
    """Deliver `alert` unless this run already sent one of its kind, and record the outcome on
    the run (a tag the UI shows). The tag is written before sending: a tick that dies mid-way
    (a timeout) is never followed by a second alert. Returns what happened; never raises.

    The sensors return None whatever happens: a run status sensor's tick stops at the first run
    for which its function returns something (a SkipReason included)."""
    tag = f"{ALERT_TAG}/{alert.kind}"
    run = context.instance.get_run_by_id(alert.run_id) or context.dagster_run
    if tag in run.tags:
        return _said(context, f"run {alert.run_id} already sent its {alert.kind} alert")
    if not alerts.configured:
        return _said(
            context,
            f"no alert channel is configured for the {alert.kind} of run {alert.run_id}: "
            "set ALERT_WEBHOOK_URL or ALERT_EMAIL_TO",
        )
    context.instance.add_run_tags(alert.run_id, {tag: "sending"})
    deliveries = alerts.send(alert, context.log)
    outcome = ", ".join(
        f"{d.channel}: {'delivered' if d.delivered else 'lost'}" for d in deliveries
    )
    context.instance.add_run_tags(alert.run_id, {tag: outcome})
    return outcome


def _said(context: RunStatusSensorContext, message: str) -> str:
    context.log.info(message)
    return message


def build_alert_sensors(settings: AlertSettings) -> list[SensorDefinition]:
    @run_failure_sensor(
        name="run_failure_alerts",
        default_status=DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=INTERVAL_SECONDS,
        description=(
            "Alerts on every failed run: its assets, partitions, failed steps with their "
            "errors, failed checks with their counts, and a link to the run."
        ),
    )
    def run_failure_alerts(context: RunFailureSensorContext, alerts: AlertChannels):
        error = context.failure_event.message or ""
        alert = run_alert(
            context.instance, context.dagster_run, "run_failure", alerts.ui_url, error
        )
        send_once(context, alerts, alert)

    @run_status_sensor(
        run_status=DagsterRunStatus.SUCCESS,
        name="run_success_alerts",
        default_status=(
            DefaultSensorStatus.RUNNING if settings.on_success else DefaultSensorStatus.STOPPED
        ),
        minimum_interval_seconds=INTERVAL_SECONDS,
        description="Alerts on every successful run (ALERT_ON_SUCCESS=on starts it running).",
    )
    def run_success_alerts(context: RunStatusSensorContext, alerts: AlertChannels):
        alert = run_alert(context.instance, context.dagster_run, "run_success", alerts.ui_url)
        send_once(context, alerts, alert)

    @run_status_sensor(
        run_status=DagsterRunStatus.SUCCESS,
        name="check_failure_alerts",
        default_status=DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=INTERVAL_SECONDS,
        description=(
            f"Alerts when asset checks of a successful run start failing at "
            f"{settings.check_severity.upper()} severity or above (ALERT_CHECK_SEVERITY); a "
            "check that stays failing does not alert again."
        ),
    )
    def check_failure_alerts(context: RunStatusSensorContext, alerts: AlertChannels):
        alert = run_alert(context.instance, context.dagster_run, "check_failure", alerts.ui_url)
        new = newly_failing(
            context.instance, alert.run_id, alert.failed_checks, settings.check_severity
        )
        if not new:
            _said(context, f"no check of run {alert.run_id} started failing")
            return
        send_once(context, alerts, replace(alert, failed_checks=tuple(new)))

    return [run_failure_alerts, run_success_alerts, check_failure_alerts]

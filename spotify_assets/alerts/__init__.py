"""Alerts: what a finished run tells people (message), read from the Dagster instance (collect),
and how it reaches them, a webhook or e-mail, with retries (channels). The sensors that send
them are in defs/alerts.py."""

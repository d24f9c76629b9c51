"""Spotify Lakehouse: a Dagster code location for a Bronze/Silver/Gold Delta Lake lakehouse."""

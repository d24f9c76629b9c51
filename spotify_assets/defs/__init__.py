"""Dagster definitions, one module per concern; `spotify_assets.definitions` merges them."""

import warnings

from dagster import BetaWarning

# `backfill_policy` is beta in Dagster 1.13; we rely on it knowingly (single-run backfills).
warnings.filterwarnings("ignore", message=".*backfill_policy.*", category=BetaWarning)

"""Dagster definitions, one module per concern; `spotify_assets.definitions` merges them."""

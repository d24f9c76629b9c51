"""The SQL source: its schema, a deterministic simulator and the Dagster resource that reads it."""

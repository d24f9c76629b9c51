"""Metadata-driven incremental ingestion: the ingestion_config table, watermarks, window stats."""

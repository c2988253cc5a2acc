"""Ingest API: authenticated, validated, durable intake of interaction events into Kafka."""

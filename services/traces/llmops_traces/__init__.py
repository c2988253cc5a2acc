"""The trace store: spans of every interaction, the query API (port 8084), request metrics (docs/traces.md)."""

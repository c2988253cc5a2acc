"""OTLP/HTTP trace ingestion (`POST /v1/traces`): the wire (`decode`), span -> interaction event
(`mapping`, `messages`, `attributes`), the answers the OTLP specification asks for (`answers`), and the
route that does the I/O (`route`). Everything but `route` is pure. See docs/otlp.md."""

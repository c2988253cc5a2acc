"""The suite's shared package: event contract, topics, settings, database, Kafka, API keys, logging."""

# The two commands of the README, and a few more for development.
.PHONY: up test down lint bootstrap bench

bootstrap:
	@bash deploy/local/bootstrap.sh

## Set everything up and run the whole suite locally, with demo traffic.
up: bootstrap
	.venv/bin/llmops up
	.venv/bin/llmops demo

## Run the tests (starts Kafka, Postgres and Redis if they are not running).
test: bootstrap
	.venv/bin/python -m pytest

down:
	.venv/bin/llmops down

lint: bootstrap
	.venv/bin/ruff check .
	.venv/bin/mypy shared services sdk

bench: bootstrap
	.venv/bin/python -m bench

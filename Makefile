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
	.venv/bin/mypy shared services sdk devtools

## Every benchmark, each against its baseline in the same run (results go into bench/RESULTS.md by hand).
bench: bootstrap
	for b in ingest_throughput otlp_ingest sdk_overhead guardrails_scan guardrails_pipeline evaluator_throughput billing_throughput traces_store; do \
	  echo "== bench/$$b.py"; .venv/bin/python bench/$$b.py || exit 1; done

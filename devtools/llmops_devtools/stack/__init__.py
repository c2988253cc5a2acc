"""The local stack: a real Kafka broker, Postgres and Redis on this machine, without Docker.

Each server is either found already listening on its port (and used as it is), or started by us from
files under the stack folder (`LLMOPS_STACK_DIR`, default `.stack/` at the repository root), where
its data, logs and pid file live. `llmops down` stops only what we started.
"""

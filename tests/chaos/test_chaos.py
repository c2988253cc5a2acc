"""The short form of the chaos run (`bench/chaos.py --short`): the whole suite, every fault once, ground truth.

The harness starts Kafka, Postgres and Redis of its own (free ports, its own folders: never the shared
servers) and every service as its own process, sends a steady load through the ingest API, injects each
fault in turn (SIGKILL of each worker and of the notifier, kill -9 of the broker, Postgres stopped in
immediate mode, Redis killed, the webhook endpoint down), waits until every consumer group's lag is zero
and checks the ledger, the rollups, the findings, the alerts and their deliveries, the judgments and the
canaries against what it sent. It runs as a subprocess, exactly as a person runs it; its report (JSON) is
what this test reads. About 2.5 minutes on two cores.

Select or deselect it with the marker: `pytest -m chaos`, `pytest -m "not chaos"`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TIMEOUT_S = 420

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(TIMEOUT_S + 120)]


def test_under_every_fault_nothing_is_lost_duplicated_or_leaked(tmp_path: Path) -> None:
    report_path, log_path = tmp_path / "report.json", tmp_path / "harness.log"
    with open(log_path, "w") as log:
        harness = subprocess.Popen(
            [sys.executable, str(REPO / "bench" / "chaos.py"), "--short", "--seed", "20261203",
             "--workdir", str(tmp_path / "run"), "--json", str(report_path)],
            # The harness runs servers of its own: no topic prefix (the session's is for the shared broker),
            # so the harness and the services it starts name the same topics.
            cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
            env={k: v for k, v in os.environ.items() if k != "LLMOPS_TOPIC_PREFIX"})
        try:
            harness.wait(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            stop(harness)
            pytest.fail(f"the chaos run did not finish within {TIMEOUT_S} s:\n{log_path.read_text()[-6000:]}")
        finally:
            stop(harness)  # interrupted: the harness still stops what it started
    output = log_path.read_text()
    print(output)
    assert report_path.exists(), f"no report; the harness said:\n{output[-6000:]}"
    report = json.loads(report_path.read_text())
    assert "error" not in report, f"the harness could not run: {report['error']}\n{output[-6000:]}"

    checks = {c["name"]: c for c in report["checks"]}
    failed = {name: c for name, c in checks.items() if not c["passed"]}
    summary = "\n".join(f"{name}: missing {c['missing']}, duplicated {c['duplicated']}, wrong {c['wrong']}; "
                        f"{c['note']}\n    " + "\n    ".join(c["evidence"]) for name, c in failed.items())
    lost = sum(c["missing"] for c in checks.values())
    duplicated = sum(c["duplicated"] for c in checks.values())
    leaked = sum(c["wrong"] for name, c in checks.items() if "canary" in name)
    assert len(report["faults"]) == 8 and all(f["recovery_s"] is not None for f in report["faults"]), output[-6000:]
    assert (lost, duplicated, leaked) == (0, 0, 0) and not failed, f"chaos run failed:\n{summary}"
    assert harness.returncode == 0


def stop(harness: subprocess.Popen[bytes]) -> None:
    """SIGTERM: the harness stops its processes and servers, then exits; SIGKILL only if it hangs."""
    if harness.poll() is not None:
        return
    harness.send_signal(signal.SIGTERM)
    try:
        harness.wait(timeout=90)
    except subprocess.TimeoutExpired:
        harness.kill()
        harness.wait()

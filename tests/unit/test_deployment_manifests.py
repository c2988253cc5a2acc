"""The deployment files CI does not run (systemd, Kubernetes, docker compose) stay in step with the process
table (`llmops_shared.services`): every service is there, runs its module, restarts when it dies, and an
API is probed on its port; and each runs `llmops retention` daily (partitions, old rows, the trace store's
compaction), which no process of the table does."""

from __future__ import annotations

from pathlib import Path

import yaml

from llmops_shared.services import SERVICES

REPO = Path(__file__).resolve().parents[2]


def test_every_service_has_a_kubernetes_deployment_that_restarts_and_probes_it() -> None:
    docs = list(yaml.safe_load_all((REPO / "deploy" / "kubernetes" / "llmops.yaml").read_text()))
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    assert set(deployments) == {s.name for s in SERVICES}
    for s in SERVICES:
        pod = deployments[s.name]["spec"]["template"]["spec"]
        [container] = pod["containers"]
        assert pod["restartPolicy"] == "Always"
        assert container["command"] == ["python", "-m", s.module]
        assert container["image"].startswith(f"llmops-{s.module.split('.')[0].removeprefix('llmops_')}:")
        if s.port is None:
            assert "ports" not in container and s.name not in services
            continue
        assert container["ports"] == [{"name": "http", "containerPort": s.port}]
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        assert services[s.name]["spec"]["ports"][0]["port"] == s.port


def test_the_systemd_template_runs_any_service_by_name_and_restarts_it() -> None:
    unit = (REPO / "deploy" / "systemd" / "llmops@.service").read_text()
    assert "ExecStart=/opt/llmops/venv/bin/llmops run %i" in unit
    assert "Restart=always" in unit and "StartLimitBurst=5" in unit and "StartLimitIntervalSec=60" in unit
    for s in SERVICES:
        assert f"llmops@{s.name}" in unit  # the instances to enable are listed


def test_docker_compose_restarts_every_long_running_container() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    assert {s.name for s in SERVICES} <= set(compose)
    for name, spec in compose.items():
        assert spec.get("restart") == ("no" if name == "migrate" else "unless-stopped"), name


def test_every_deployment_runs_retention_daily_one_run_at_a_time() -> None:
    docs = list(yaml.safe_load_all((REPO / "deploy" / "kubernetes" / "llmops.yaml").read_text()))
    [cron] = [d for d in docs if d["kind"] == "CronJob"]
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    minute, hour, *every = cron["spec"]["schedule"].split()
    assert minute.isdigit() and hour.isdigit() and every == ["*", "*", "*"]  # once a day
    [container] = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["llmops", "retention"]
    assert container["image"].startswith("llmops-traces:")  # the image with the trace store's retention hook

    timer = (REPO / "deploy" / "systemd" / "llmops-retention.timer").read_text()
    assert "OnCalendar=*-*-* 03:17:00" in timer and "Persistent=true" in timer
    unit = (REPO / "deploy" / "systemd" / "llmops-retention.service").read_text()
    assert "Type=oneshot" in unit and "ExecStart=/opt/llmops/venv/bin/llmops retention" in unit

    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]["retention"]
    assert compose["build"]["args"]["SERVICE"] == "traces"
    assert "llmops retention; then sleep 86400" in compose["command"][-1]

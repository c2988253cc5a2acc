"""A single-node Apache Kafka broker in KRaft mode, assembled from Maven Central's jars.

The version is pinned once, in `deploy/local/kafka/pom.xml`. Maven copies the broker's runtime
dependencies into `<stack>/kafka/lib` (cached in `~/.m2`, so later runs need no network).
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

from llmops_devtools.stack.processes import (
    StackError,
    port_open,
    read_pid,
    repo_root,
    spawn,
    stop_pid,
    tail,
    wait_for,
)

_DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy-dependencies"


@dataclass(frozen=True)
class KafkaBroker:
    home: Path  # <stack>/kafka, or a test's own folder
    port: int = 9092
    controller_port: int = 9093
    heap: str = "768m"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def lib(self) -> Path:
        return self.home / "lib"

    @property
    def pid_file(self) -> Path:
        return self.home / "kafka.pid"

    @property
    def log_file(self) -> Path:
        return self.home / "kafka.log"

    def install(self) -> None:
        """Fetch the broker's jars with Maven unless they are there already."""
        if self.lib.is_dir() and any(self.lib.glob("kafka_2.13-*.jar")):
            return
        if shutil.which("mvn") is None or shutil.which("java") is None:
            raise StackError("Kafka needs a JDK (17+) and Maven: run deploy/local/install-system-packages.sh")
        pom = repo_root() / "deploy" / "local" / "kafka" / "pom.xml"
        self.home.mkdir(parents=True, exist_ok=True)
        tmp = self.home / "lib.partial"
        shutil.rmtree(tmp, ignore_errors=True)
        result = subprocess.run(
            ["mvn", "-B", "-q", "-f", str(pom), _DEPENDENCY_PLUGIN, f"-DoutputDirectory={tmp}",
             "-DincludeScope=runtime"],
            capture_output=True, text=True, check=False,
        )
        if result.returncode != 0:
            raise StackError(f"maven could not fetch Kafka's jars:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
        tmp.rename(self.lib)

    def _write_config(self) -> Path:
        data = self.home / "data"
        data.mkdir(parents=True, exist_ok=True)
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(data),
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "num.network.threads": "2",
            "num.io.threads": "2",
            "num.partitions": "6",
            # Topics are created explicitly by `llmops up` / `ensure_topics`, with their retention.
            # Consumers (faust) may still create their own internal topics.
            "auto.create.topics.enable": "true",
            "log.retention.hours": "72",
        }
        config = self.home / "server.properties"
        config.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        return config

    def _java(self, *args: str) -> list[str]:
        log4j = repo_root() / "deploy" / "local" / "kafka" / "log4j.properties"
        return ["java", f"-Dlog4j.configuration=file:{log4j}", "-cp", f"{self.lib}/*", *args]

    def running(self) -> bool:
        return read_pid(self.pid_file) is not None

    def start(self, timeout_s: float = 60) -> bool:
        """Start the broker (formatting its storage on first use). False if it was already running."""
        if self.running():
            return False
        if port_open(self.port):
            raise StackError(f"port {self.port} is taken by a process this stack did not start")
        self.install()
        config = self._write_config()
        if not (self.home / "data" / "meta.properties").exists():
            subprocess.run(
                self._java("kafka.tools.StorageTool", "format", "-t", _cluster_id(), "-c", str(config),
                           "--ignore-formatted"),
                check=True, capture_output=True,
            )
        offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        spawn(
            ["java", "-Xms256m", f"-Xmx{self.heap}", "-XX:+UseG1GC", "-XX:TieredStopAtLevel=1",
             *self._java("kafka.Kafka", str(config))[1:]],
            pid_file=self.pid_file, log_file=self.log_file,
        )

        def started() -> bool:
            with open(self.log_file, "rb") as log:
                log.seek(offset)
                return b"Kafka Server started" in log.read()

        if not wait_for(lambda: self.running() and started() and port_open(self.port), timeout_s, 0.2):
            self.stop(timeout_s=5)
            raise StackError(f"Kafka did not start within {timeout_s}s; last log lines:\n{tail(self.log_file)}")
        return True

    def stop(self, timeout_s: float = 30) -> bool:
        """Controlled shutdown (SIGTERM), SIGKILL after the timeout."""
        return stop_pid(self.pid_file, timeout_s=timeout_s)



def _cluster_id() -> str:
    """A KRaft cluster id (a URL-safe base64 UUID) that does not start with '-': StorageTool would read
    such an id as an option (one format in 64 failed that way)."""
    import base64

    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id

"""A real Ray cluster of one test run on this machine: a head and worker nodes, each a
`ray start --block` process in its own session with 1 CPU, its own ports and its own temp
folder. It is stopped by killing its own process groups — never `ray stop`, which stops every
Ray on the machine (other people's included)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RAY = str(Path(sys.executable).with_name("ray"))

FAST_DEATH = {"RAY_health_check_initial_delay_ms": "1000", "RAY_health_check_period_ms": "1000",
              "RAY_health_check_timeout_ms": "1000", "RAY_health_check_failure_threshold": "3"}
"""A killed node is declared dead within seconds (the default waits much longer)."""

QUIET = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
"""No usage report; no token (Ray 2.60 turns token auth on when ~/.ray/auth_token exists,
a file other people's clusters on this machine may have written)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ray_missing() -> str | None:
    try:
        import ray.data  # noqa: F401
    except ImportError as e:
        return f"Ray Data is not installed ({e}): pip install -r requirements-test.txt"
    if not Path(RAY).is_file():
        return f"no `ray` command beside {sys.executable}"
    return None


class RayCluster:
    """`address` is what `--address` takes. `env` is every node's environment on top of
    this process's (a worker node's own configuration: keys, proxies). `gpus` is what the
    head declares: Ray schedules by them whether or not the card is there; `head_cpus` the
    CPUs it offers (0: it only runs the cluster, the workers score). `cores` pins node i to
    core `cores[i % len(cores)]` (a bench's one-core machines)."""

    def __init__(self, log_dir: Path, *, workers: int = 1, env: dict[str, str] | None = None,
                 cpus: int = 1, gpus: int = 0, cores: list[int] | None = None,
                 head_cpus: int | None = None) -> None:
        self.log_dir, self.cpus, self.gpus, self.cores = log_dir, cpus, gpus, cores
        self.head_cpus = cpus if head_cpus is None else head_cpus
        self.log_dir.mkdir(parents=True, exist_ok=True)
        # short: Ray's unix sockets live under it (107 characters at most)
        self.temp = tempfile.mkdtemp(prefix="saiten-ray-", dir="/tmp")
        self.env = {**os.environ, **QUIET, **FAST_DEATH, **(env or {})}
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.nodes: list[subprocess.Popen] = []
        self.killed: list[subprocess.Popen] = []
        try:
            self.head = self._node(head=True)
            self.wait(1)
            for _ in range(workers):
                self.add_worker()
        except BaseException:
            self.stop()
            raise

    def _node(self, *, head: bool) -> subprocess.Popen:
        ports = {f"--{n}": str(free_port()) for n in (
            "node-manager-port", "object-manager-port", "dashboard-agent-listen-port",
            "dashboard-agent-grpc-port", "runtime-env-agent-port", "metrics-export-port")}
        gpus = self.gpus if head else 0  # GPUs Ray schedules by: a head that declares them
        cpus = self.head_cpus if head else self.cpus
        args = [RAY, "start", "--block", "--num-cpus", str(cpus), "--num-gpus", str(gpus),
                "--temp-dir", self.temp, "--disable-usage-stats",
                *[x for kv in ports.items() for x in kv]]
        if head:
            args += ["--head", "--port", str(self.port), "--include-dashboard", "false",
                     "--dashboard-port", str(free_port())]
        else:
            args += ["--address", self.address]
        log = (self.log_dir / f"node{len(self.nodes)}.log").open("w")
        core = self.cores[len(self.nodes) % len(self.cores)] if self.cores else None
        node = subprocess.Popen(args, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True,
                                preexec_fn=None if core is None else
                                lambda: os.sched_setaffinity(0, {core}))
        self.nodes.append(node)
        return node

    def alive(self) -> int:
        """Nodes the cluster counts alive (asked from a separate driver process)."""
        code = (f"import ray; ray.init(address={self.address!r}, logging_level='ERROR'); "
                "print(sum(n['Alive'] for n in ray.nodes()))")
        out = subprocess.run([sys.executable, "-c", code], env=self.env, capture_output=True,
                             text=True, timeout=120)
        return int(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else 0

    def wait(self, n: int, timeout: float = 120.0) -> None:
        end = time.monotonic() + timeout
        while (alive := self.alive()) != n:
            dead = [p.args for p in self.nodes if p.poll() is not None and p not in self.killed]
            if dead or time.monotonic() > end:
                raise RuntimeError(f"Ray cluster: {alive} nodes alive, wanted {n}; see "
                                   f"{self.log_dir} ({dead or 'timed out'})")
            time.sleep(0.5)

    def add_worker(self) -> subprocess.Popen:
        live = sum(p.poll() is None for p in self.nodes)
        node = self._node(head=False)
        self.wait(live + 1)
        return node

    def kill(self, node: subprocess.Popen) -> None:
        """SIGKILL a node: its raylet and every worker process on it, at once."""
        self.killed.append(node)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(node.pid, signal.SIGKILL)
        node.wait(30)

    @property
    def workers(self) -> list[subprocess.Popen]:
        return [p for p in self.nodes[1:] if p.poll() is None]

    def session_logs(self) -> Path:
        return Path(self.temp)

    def stop(self) -> None:
        for node in reversed(self.nodes):
            self.kill(node)
        self.nodes.clear()
        shutil.rmtree(self.temp, ignore_errors=True)

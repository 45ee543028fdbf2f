"""acfd-serve replicas behind HAProxy, killed under load: is any request lost or wrong?

    .venv/bin/python benchmarks/serve_failover.py            # 3 replicas: SIGTERM r1, SIGKILL r2, restart r2
    .venv/bin/python benchmarks/serve_failover.py --quick    # 2 replicas: SIGKILL r1, restart r1, SIGTERM r2 (the test)

Everything on 127.0.0.1 (free ports), bounded in requests and seconds, stops by itself.
Starts ``acfd-serve`` replicas of the bundled demo model (each one tritonserver with the
Python backend, one thread: ``ACFD_NUM_THREADS=1``) and HAProxy in front of their HTTP
ports (health check ``GET /v2/health/ready`` every 0.5 s, down after 2 failures, up after 2
successes; retries on the next replica for connection failures, empty responses, time-outs
and 503). Concurrent tritonclient HTTP clients, each one request at a time, send JPEG files
to the ``acfd`` model through HAProxy with the client retry policy of docs/serving.md
(:data:`CLIENT_RETRIES`). During the run the schedule's faults happen: SIGTERM to a replica
(graceful: it must drain and HAProxy must stop sending to it), SIGKILL of a replica's server
(a crash: what it held must be retried elsewhere), a restart (it must rejoin once ready).

Reported: requests sent, answered, failed (after the client's retries), retried (by the
client; HAProxy's own retries from its log), wrong (detections that differ from the
in-process Detector's for that image: IoU >= 0.99 and score within 1e-3 for every detection
>= 0.3, both ways); p50/p99 latency per phase; how long until HAProxy marked a dying replica
down and sent it its last request, and until a restarted one was up and took traffic.
Needs ``haproxy`` (``scripts/setup.sh --failover`` installs Debian's). Writes ``<out>.json``
and ``<out>.md``; exit 0 when nothing was lost or wrong, 1 otherwise, 2 without haproxy.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from acfd_deploy.envinfo import environment, package_version  # noqa: E402
from acfd_deploy.serve.server import free_port  # noqa: E402

CLIENT_RETRIES = 3  # a request is sent at most 1 + 3 times ...
CLIENT_BACKOFF_S = (0.2, 0.5, 1.0)  # ... waiting this long before each retry
RETRYABLE_STATUS = {"502", "503", "504"}  # HAProxy: no replica left, or a replica refusing while it stops
LOOPBACK = "127.0.0.1"


# ---------------------------------------------------------------- HAProxy


def haproxy_config(port: int, servers: dict[str, int], inter_ms: int = 500) -> str:
    """HAProxy in front of ``servers`` (name -> HTTP port on 127.0.0.1), one log line per
    request (accept time, server, status, retries) and per health change on stdout."""
    lines = [
        "global",
        "    log stdout format raw local0 info",
        "    tune.bufsize 262144  # requests up to this size are kept for a retry (L7 retries)",
        "    maxconn 512",
        "defaults",
        "    mode http",
        "    log global",
        '    log-format "req %Ts.%ms %s %ST %rc %Tt %tsc"',
        "    option log-health-checks",
        "    timeout connect 1s",
        "    timeout client 60s",
        "    timeout server 30s",
        "    timeout check 1s",
        "    retries 3",
        "    option redispatch 1  # every retry goes to another replica",
        "    retry-on conn-failure empty-response response-timeout 503",
        "frontend acfd",
        f"    bind {LOOPBACK}:{port}",
        "    default_backend replicas",
        "backend replicas",
        "    balance roundrobin",
        "    option httpchk GET /v2/health/ready",
        "    http-check expect status 200",
        f"    default-server check inter {inter_ms}ms fall 2 rise 2",
        *(f"    server {name} {LOOPBACK}:{p}" for name, p in servers.items()),
    ]
    return "\n".join(lines) + "\n"


def find_haproxy() -> str | None:
    return shutil.which("haproxy") or next((p for p in ("/usr/sbin/haproxy", "/usr/local/sbin/haproxy") if os.access(p, os.X_OK)), None)


REQ_LINE = re.compile(r"^req (\d+)\.(\d+) (\S+) (-?\d+) \+?(-?\d+) (-?\d+) (\S+)")
STATE_LINE = re.compile(r"Server replicas/(\w+) is (UP|DOWN)")


class Balancer:
    """HAProxy in the foreground; its stdout read as it comes (each line time-stamped)."""

    def __init__(self, binary: str, folder: Path, servers: dict[str, int]) -> None:
        self.port = free_port()
        self.config = folder / "haproxy.cfg"
        self.config.write_text(haproxy_config(self.port, servers))
        self.requests: list[tuple[float, str, int, int, float]] = []  # accept time, server, status, retries, total s
        self.states: list[tuple[float, str, str]] = []  # arrival time, server, UP/DOWN
        self.log = folder / "haproxy.log"
        self.proc = subprocess.Popen(
            [binary, "-db", "-f", str(self.config)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        with open(self.log, "w") as log:
            for raw in self.proc.stdout:
                line = raw.decode(errors="replace").rstrip()
                log.write(f"{time.time():.3f} {line}\n")
                m = REQ_LINE.match(line)
                if m:
                    accept = int(m[1]) + int(m[2]) / 1000
                    self.requests.append((accept, m[3].split("/")[-1], int(m[4]), int(m[5]), max(0, int(m[6])) / 1000))
                    continue
                s = STATE_LINE.search(line)
                if s:
                    self.states.append((time.time(), s[1], s[2]))

    @property
    def url(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def first_state(self, server: str, state: str, after: float) -> float | None:
        return next((t for t, s, st in self.states if s == server and st == state and t >= after), None)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.reader.join(5)


# ---------------------------------------------------------------- replicas


@dataclass
class Replica:
    """One ``acfd-serve`` process (the bundled demo model) on three free loopback ports."""

    name: str
    folder: Path
    imgsz: tuple[int, int]
    ports: list[int] = field(default_factory=lambda: [free_port() for _ in range(3)])
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    started_at: float = 0.0

    def start(self) -> None:
        cmd = [sys.executable, "-m", "acfd_deploy.cli.serve", "--imgsz", *map(str, self.imgsz)]
        cmd += ["--http-port", str(self.ports[0]), "--grpc-port", str(self.ports[1]), "--metrics-port", str(self.ports[2])]
        paths = (str(ROOT), os.environ.get("PYTHONPATH", ""))
        env = {**os.environ, "ACFD_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
        self.starts += 1
        self.started_at = time.monotonic()
        log = open(self.folder / f"{self.name}-{self.starts}.log", "wb")  # noqa: SIM115  (the process keeps it)
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.folder, stdin=subprocess.DEVNULL)

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{LOOPBACK}:{self.ports[0]}/v2/health/ready", timeout=1) as resp:
                return int(resp.status) == 200
        except (OSError, ValueError):
            return False

    def wait_ready(self, timeout_s: float) -> float:
        """Seconds from its start until ready; an error (with the log's tail) if it exits or
        takes too long."""
        t0 = self.started_at
        while time.monotonic() - t0 < timeout_s:
            if self.proc is None or self.proc.poll() is not None:
                break
            if self.ready():
                return time.monotonic() - t0
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} did not get ready:\n{self.log_tail()}")

    def server_exit(self) -> int | None:
        """tritonserver's own exit code, as acfd-serve logged it (-9: killed after the drain timeout)."""
        found = re.findall(r"tritonserver exit(?:ed on its own with)? code (-?\d+)", self.log_tail())
        return int(found[-1]) if found else None

    def log_tail(self) -> str:
        logs = sorted(self.folder.glob(f"{self.name}-*.log"))
        return logs[-1].read_text(errors="replace")[-2000:] if logs else ""

    def terminate(self) -> None:
        """What Kubernetes does to a pod: SIGTERM to acfd-serve (it passes it to tritonserver)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)

    def crash(self) -> None:
        """SIGKILL to the server and its backend processes (acfd-serve then exits 1, as a
        crashed pod's container would)."""
        assert self.proc is not None
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        for pid in map(int, children):  # tritonserver leads its own process group (its stubs are in it)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)

    def wait_exit(self, timeout_s: float) -> int | None:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            if self.wait_exit(30) is None:
                self.proc.kill()
                self.proc.wait()


# ---------------------------------------------------------------- load and its checks


def make_images(count: int, height: int, width: int, seed: int = 5) -> list[bytes]:
    """Synthetic cartoon scenes with faces, as JPEG files (what a client would send)."""
    from acfd_deploy.data.encoded import synthetic_jpegs

    return synthetic_jpegs(count, height, width, seed)


def references(images: list[bytes], imgsz: tuple[int, int]) -> list[tuple[np.ndarray, np.ndarray]]:
    """What acfd-detect's Detector finds in each file, in this process (the demo model)."""
    from acfd_deploy.pipeline.detector import Detector, DetectorConfig
    from acfd_deploy.pipeline.io import decode_image
    from acfd_deploy.resources import demo_weights
    from acfd_deploy.runtime.registry import load_runner

    detector = Detector(load_runner(str(demo_weights()), device="cpu"), DetectorConfig(scales=(imgsz,), batch_size=1))
    out = []
    for data in images:
        (dets,) = detector.detect([decode_image(data)])
        out.append((np.asarray(dets.boxes, np.float32), np.asarray(dets.scores, np.float32)))
    return out


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    return np.asarray(inter / (area(a)[:, None] + area(b)[None, :] - inter + 1e-9))


def same_detections(ref: tuple[np.ndarray, np.ndarray], got: tuple[np.ndarray, np.ndarray], floor: float = 0.3) -> bool:
    """Every detection >= ``floor`` on either side found on the other at IoU >= 0.99 and a
    score within 1e-3 (the tests' rule for acfd-serve against acfd-detect)."""
    for (b1, s1), (b2, s2) in ((ref, got), (got, ref)):
        strong = s1 >= floor
        if not strong.any():
            continue
        if not len(b2):
            return False
        close = (_iou(b1[strong], b2) >= 0.99) & (np.abs(s1[strong][:, None] - s2[None, :]) <= 1e-3)
        if not close.any(axis=1).all():
            return False
    return True


@dataclass
class Request:
    start: float
    end: float
    image: int
    attempts: int
    ok: bool
    correct: bool | None
    error: str | None  # why it failed (after the retries), or why it was retried


class Load:
    """``clients`` threads, each one request at a time through the balancer, until stopped
    or ``max_requests`` were sent; each answer checked against its image's reference."""

    def __init__(self, url: str, images: list[bytes], refs: list[Any], clients: int, max_requests: int) -> None:
        self.url, self.images, self.refs = url, images, refs
        self.max_requests = max_requests
        self.done: list[Request] = []
        self.lock = threading.Lock()
        self.sent = 0
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._worker, args=(i,), daemon=True) for i in range(clients)]

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def stop(self) -> None:
        self.stopping.set()
        for t in self.threads:
            t.join(60)

    def _next(self) -> int | None:
        with self.lock:
            if self.stopping.is_set() or self.sent >= self.max_requests:
                return None
            self.sent += 1
            return self.sent - 1

    def _worker(self, k: int) -> None:
        import tritonclient.http as httpclient
        from tritonclient.utils import InferenceServerException

        client = httpclient.InferenceServerClient(self.url, connection_timeout=5.0, network_timeout=60.0)
        while (n := self._next()) is not None:
            i = n % len(self.images)
            tensor = httpclient.InferInput("image", [1, 1], "BYTES")
            tensor.set_data_from_numpy(np.asarray([[self.images[i]]], dtype=object), binary_data=True)
            start, attempts, error, result = time.time(), 0, None, None
            while True:
                attempts += 1
                try:
                    result = client.infer("acfd", [tensor])
                    break
                except InferenceServerException as exc:  # an answer: retried only if the balancer had no replica
                    error = f"HTTP {exc.status()}: {exc.message()[:160]}"
                    retry = exc.status() in RETRYABLE_STATUS
                except Exception as exc:  # noqa: BLE001  (a connection error: the request may not have arrived)
                    error = f"{type(exc).__name__}: {str(exc)[:160]}"
                    retry = True
                    client.close()
                    client = httpclient.InferenceServerClient(self.url, connection_timeout=5.0, network_timeout=60.0)
                if not retry or attempts > CLIENT_RETRIES:
                    break
                time.sleep(CLIENT_BACKOFF_S[attempts - 1])
            correct = None
            if result is not None:
                num = int(result.as_numpy("num_dets")[0, 0])
                got = (result.as_numpy("det_boxes")[0, :num], result.as_numpy("det_scores")[0, :num])
                correct = same_detections(self.refs[i], got)
            with self.lock:
                self.done.append(Request(start, time.time(), i, attempts, result is not None, correct, error))
        client.close()


# ---------------------------------------------------------------- the run


def percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)) * 1e3, 1) if values else None


def window(requests: list[Request], start: float, end: float) -> dict[str, Any]:
    """Requests sent in [start, end): how many, and their latency (answered ones)."""
    inside = [r for r in requests if start <= r.start < end]
    lat = [r.end - r.start for r in inside if r.ok]
    return {
        "seconds": round(end - start, 1),
        "sent": len(inside),
        "answered": sum(r.ok for r in inside),
        "failed": sum(not r.ok for r in inside),
        "retried": sum(r.attempts > 1 for r in inside),
        "p50_ms": percentile(lat, 50),
        "p99_ms": percentile(lat, 99),
    }


def _after(t0: float, t: float | None) -> float | None:
    return None if t is None else round(t - t0, 2)


def run(args: argparse.Namespace, haproxy: str, folder: Path) -> dict[str, Any]:
    imgsz = (args.imgsz[0], args.imgsz[1])
    images = make_images(args.images, *args.image_size)
    t_ref = time.perf_counter()
    refs = references(images, imgsz)
    in_process_ms = round((time.perf_counter() - t_ref) / len(images) * 1e3, 1)  # model load included: an upper bound
    if not all((s >= 0.3).any() for _, s in refs):
        raise RuntimeError("an image has no detection >= 0.3 to check answers against: use other --image-size or --images")
    replicas = {f"r{i + 1}": Replica(f"r{i + 1}", folder, imgsz) for i in range(args.replicas)}
    marks: dict[str, float] = {}
    events: list[dict[str, Any]] = []
    deadline = time.monotonic() + args.max_seconds
    t_start = time.time()
    for r in replicas.values():
        r.start()
    startup = {name: round(r.wait_ready(args.ready_timeout), 1) for name, r in replicas.items()}
    balancer = Balancer(haproxy, folder, {name: r.ports[0] for name, r in replicas.items()})
    load = Load(balancer.url, images, refs, args.clients, args.max_requests)
    try:
        time.sleep(1.5)  # HAProxy's first checks
        marks["load"] = time.time()
        load.start()

        def pause(seconds: float) -> None:
            time.sleep(max(0.0, min(seconds, deadline - time.monotonic())))

        pause(args.phase)
        for action, name in args.schedule:
            r, t0 = replicas[name], time.time()
            event: dict[str, Any] = {"action": action, "replica": name, "at_s": round(t0 - marks["load"], 2)}
            if action in ("term", "kill"):
                r.terminate() if action == "term" else r.crash()
                code = r.wait_exit(max(1.0, deadline - time.monotonic()))
                t_exit = time.time()
                down = balancer.first_state(name, "DOWN", t0)
                routed = [t for t, s, st, *_ in balancer.requests if s == name and st == 200 and t >= t0]
                drained = [t for t, s, st, _, tt in balancer.requests if s == name and st == 200 and t < t0 < t + tt]
                moved = [t for t, s, _, n, tt in balancer.requests if s != name and n > 0 and t < t0 < t + tt]
                event.update(
                    exit_code=code,
                    tritonserver_exit_code=r.server_exit(),
                    exited_after_s=_after(t0, t_exit),
                    marked_down_after_s=_after(t0, down),
                    sent_to_it_after_signal=len(routed),
                    in_flight_answered_by_it=len(drained),
                    in_flight_retried_elsewhere_by_haproxy=len(moved),
                )
                marks[f"{action}:{name}:end"] = max(t_exit, down or t_exit)
            elif action == "restart":
                r.start()
                r.wait_ready(max(1.0, deadline - time.monotonic()))
                ready = time.time()
                while balancer.first_state(name, "UP", t0) is None and time.monotonic() < deadline:
                    time.sleep(0.1)
                first = None
                while first is None and time.monotonic() < deadline:
                    first = next((t for t, s, *_ in balancer.requests if s == name and t >= t0), None)
                    time.sleep(0.1)
                event.update(
                    ready_after_s=_after(t0, ready),
                    marked_up_after_s=_after(t0, balancer.first_state(name, "UP", t0)),
                    first_request_after_s=_after(t0, first),
                )
                marks[f"restart:{name}:end"] = first or time.time()
            event["t0"] = t0
            events.append(event)
            pause(args.phase)
        marks["end"] = time.time()
    finally:
        load.stop()
        balancer.stop()
        for r in replicas.values():
            r.stop()
    done = load.done
    phases = {"before faults": window(done, marks["load"], events[0]["t0"] if events else marks["end"])}
    for k, e in enumerate(events):
        end_key = f"{e['action']}:{e['replica']}:end"
        nxt = events[k + 1]["t0"] if k + 1 < len(events) else marks["end"]
        label = {"term": "SIGTERM", "kill": "SIGKILL", "restart": "restart"}[e["action"]]
        phases[f"during {label} {e['replica']}"] = window(done, e["t0"], marks[end_key])
        phases[f"after {label} {e['replica']}"] = window(done, marks[end_key], nxt)
    for e in events:
        e.pop("t0")
    lost = [r.error for r in done if not r.ok]
    return {
        "config": {
            "replicas": args.replicas,
            "clients": args.clients,
            "imgsz": list(imgsz),
            "image_size": args.image_size,
            "images": args.images,
            "schedule": [list(s) for s in args.schedule],
            "phase_s": args.phase,
            "client_retries": CLIENT_RETRIES,
            "client_backoff_s": list(CLIENT_BACKOFF_S),
            "haproxy": haproxy_config(0, {n: 0 for n in replicas}).splitlines(),
        },
        "startup_s": startup,
        "in_process_ms_per_image": in_process_ms,
        "seconds": round(time.time() - t_start, 1),
        "totals": {
            "sent": len(done),
            "answered": sum(r.ok for r in done),
            "failed": len(lost),
            "retried_by_client": sum(r.attempts > 1 for r in done),
            "retried_by_haproxy": sum(1 for *_, n, _ in balancer.requests if n > 0),
            "wrong": sum(r.correct is False for r in done),
            "checked": sum(r.correct is not None for r in done),
        },
        "errors": sorted(set(e for e in lost if e))[:10],
        "client_errors_retried": sorted({r.error for r in done if r.ok and r.error})[:10],
        "phases": phases,
        "events": events,
        "served_by": {n: sum(1 for _, s, st, *_ in balancer.requests if s == n and st == 200) for n in replicas},
    }


def machine() -> dict[str, Any]:
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = next((line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name")), "unknown")
    haproxy = find_haproxy()
    version = subprocess.run([haproxy, "-v"], capture_output=True, text=True).stdout.split("\n")[0] if haproxy else None
    return {
        **environment(),
        "cpu_model": model,
        "cpus": os.cpu_count(),
        "haproxy": version,
        "nvidia_pytriton": package_version("nvidia-pytriton"),
        "tritonclient": package_version("tritonclient"),
    }


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f} ms"


def _s(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f} s"


def markdown(result: dict[str, Any]) -> str:
    m, cfg, tot = result["machine"], result["config"], result["totals"]
    lines = [
        f"# acfd-serve failover behind HAProxy: {cfg['replicas']} replicas, {cfg['clients']} clients",
        "",
        f"Measured {result['measured']} on {m['cpu_model']} ({m['cpus']} cores), load average {m['loadavg_before']} before and "
        f"{m['loadavg_after']} after (1 min); the machine was shared with other work while this ran. {m['haproxy']}; "
        f"nvidia-pytriton {m['nvidia_pytriton']} (tritonserver 2.51), tritonclient {m['tritonclient']}, Python {m['python']}.",
        "",
        f"Replicas: acfd-serve, the bundled demo model, `--imgsz {cfg['imgsz'][0]} {cfg['imgsz'][1]}`, one thread each "
        f"(`ACFD_NUM_THREADS=1`), all on 127.0.0.1. Clients: tritonclient HTTP through HAProxy, one request at a time each, "
        f"{cfg['images']} synthetic {cfg['image_size'][0]}x{cfg['image_size'][1]} JPEG files; client retry policy: up to "
        f"{cfg['client_retries']} retries after {', '.join(str(b) for b in cfg['client_backoff_s'])} s on a connection error or "
        "HTTP 502/503/504. Schedule: " + ", ".join(f"{a} {r}" for a, r in cfg["schedule"]) + f", {cfg['phase_s']} s apart.",
        "",
        f"**Requests: {tot['sent']} sent, {tot['answered']} answered, {tot['failed']} failed after the client's retries, "
        f"{tot['retried_by_client']} retried by the client, {tot['retried_by_haproxy']} retried by HAProxy; "
        f"{tot['wrong']} of {tot['checked']} answers with detections other than the in-process Detector's.**",
        "",
        "| phase | seconds | sent | answered | failed | client retries | p50 | p99 |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, ph in result["phases"].items():
        lines.append(
            f"| {name} | {ph['seconds']} | {ph['sent']} | {ph['answered']} | {ph['failed']} | {ph['retried']} | "
            f"{_ms(ph['p50_ms'])} | {_ms(ph['p99_ms'])} |"
        )
    lines += [
        "",
        "| fault | at | replica exit | HAProxy marks down | sent to it after | in flight: answered / retried elsewhere | ready "
        "| HAProxy marks up | first request |",
    ]
    lines += ["| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for e in result["events"]:
        code = "" if e.get("exit_code") is None else f" (code {e['exit_code']}, tritonserver {e.get('tritonserver_exit_code')})"
        exit_ = _s(e.get("exited_after_s")) + code if e["action"] != "restart" else "-"
        lines.append(
            f"| {e['action']} {e['replica']} | {e['at_s']:.1f} s | {exit_} | {_s(e.get('marked_down_after_s'))} | "
            f"{e.get('sent_to_it_after_signal', '-')} | {e.get('in_flight_answered_by_it', '-')} / "
            f"{e.get('in_flight_retried_elsewhere_by_haproxy', '-')} | {_s(e.get('ready_after_s'))} | "
            f"{_s(e.get('marked_up_after_s'))} | {_s(e.get('first_request_after_s'))} |"
        )
    lines += [
        "",
        "Times in the fault table are from the signal (or the restart command). Sent to it after: requests HAProxy "
        "accepted after the signal and the dying replica answered; in flight: requests it held at the signal that it "
        "answered (drained) or that HAProxy retried on another replica (a crash); all from HAProxy's log.",
        f"In-process Detector in the same run (decode + network + post-processing, the model's load included): "
        f"{result['in_process_ms_per_image']:.0f} ms per image; replicas ready after "
        + ", ".join(f"{n} {t:.0f} s" for n, t in result["startup_s"].items())
        + " (started together).",
        "Answered per replica: " + ", ".join(f"{n} {c}" for n, c in result["served_by"].items()) + ".",
    ]
    if result["errors"]:
        lines += ["", "Failures: " + "; ".join(result["errors"])]
    if result["client_errors_retried"]:
        lines += ["", "Client retries were for: " + "; ".join(result["client_errors_retried"])]
    if result.get("note"):
        lines += ["", result["note"]]
    lines += ["", "Reproduce: `scripts/setup.sh --failover && .venv/bin/python benchmarks/serve_failover.py`."]
    return "\n".join(lines) + "\n"


def _event(text: str) -> tuple[str, str]:
    action, _, name = text.partition(":")
    if action not in ("term", "kill", "restart") or not re.fullmatch(r"r\d+", name):
        raise argparse.ArgumentTypeError(f"expected term:rN, kill:rN or restart:rN, got {text!r}")
    return action, name


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="2 replicas, 2 clients: kill r1, restart r1, term r2 (the test suite's case)")
    p.add_argument("--replicas", type=int, default=3)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--schedule", nargs="+", type=_event, default=[("term", "r1"), ("kill", "r2"), ("restart", "r2")])
    p.add_argument("--phase", type=float, default=8.0, help="seconds of load before the first fault, between faults and after the last")
    p.add_argument("--imgsz", nargs=2, type=int, default=[256, 352], metavar=("H", "W"))
    p.add_argument("--image-size", nargs=2, type=int, default=[240, 320], metavar=("H", "W"))
    p.add_argument("--images", type=int, default=6)
    p.add_argument("--max-requests", type=int, default=5000)
    p.add_argument("--max-seconds", type=float, default=300.0, help="the whole run, start-up included, stops by then")
    p.add_argument("--ready-timeout", type=float, default=180.0)
    p.add_argument("--note", default="")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "serve_failover")
    args = p.parse_args(argv)
    if args.quick:
        args.replicas, args.clients, args.phase = 2, 2, 4.0
        args.schedule = [("kill", "r1"), ("restart", "r1"), ("term", "r2")]
    known = {f"r{i + 1}" for i in range(args.replicas)}
    if any(name not in known for _, name in args.schedule):
        p.error(f"the schedule names a replica beyond --replicas {args.replicas}")
    haproxy = find_haproxy()
    if haproxy is None:
        print("serve_failover: haproxy is not installed: run scripts/setup.sh --failover (apt-get install haproxy)", file=sys.stderr)
        return 2
    load_before = round(os.getloadavg()[0], 2)
    with tempfile.TemporaryDirectory(prefix="acfd-failover-") as tmp:
        try:
            result = run(args, haproxy, Path(tmp))
        except RuntimeError as exc:
            print(f"serve_failover: {exc}", file=sys.stderr)
            return 1
    result = {
        "measured": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {**machine(), "loadavg_before": load_before, "loadavg_after": round(os.getloadavg()[0], 2)},
        **result,
        "note": args.note,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{args.out}.json").write_text(json.dumps(result, indent=2) + "\n")
    Path(f"{args.out}.md").write_text(markdown(result))
    print(markdown(result))
    tot = result["totals"]
    return 0 if tot["failed"] == 0 and tot["wrong"] == 0 and tot["checked"] == tot["answered"] else 1


if __name__ == "__main__":
    sys.exit(main())

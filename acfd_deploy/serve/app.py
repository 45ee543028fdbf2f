"""acfd-serve as one library call: :func:`serve` with a :class:`ServeOptions`.

Everything that can be checked is checked before a server starts, cheapest first, so bad
input is one line and exit 2 with nothing launched: the options, the model reference, its
verdict in the ``export.json`` beside it (``require_verified`` refuses anything not listed
as passed), the bundled server and its stub's numpy, then the model itself (loaded once
here, so a bad file is not a model-load failure buried in the server's log). Then the
repository is written into a temporary folder, PyTriton's bundled ``tritonserver`` runs on
it, and SIGTERM or Ctrl-C stop it gracefully: in-flight requests are answered, then it
exits within the drain timeout and a few seconds (:mod:`acfd_deploy.serve.server`).

Exit codes: 0 stopped by a signal (a server's normal end), 1 the server died on its own,
2 bad usage or bad input (an :class:`~acfd_deploy.errors.AcfdError`, raised).
"""

from __future__ import annotations

import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from acfd_deploy.errors import AcfdError
from acfd_deploy.fileio import require_file
from acfd_deploy.pipeline.detector import DEFAULT_SCALE
from acfd_deploy.runtime.device import parse_device
from acfd_deploy.runtime.registry import backend_for, is_url, load_runner
from acfd_deploy.serve.server import EXIT_TIMEOUT_S
from acfd_deploy.tritonrepo.pbtxt import DEFAULT_MAX_BATCH, DEFAULT_QUEUE_DELAY_US, E2E, END_TO_END, ENGINE
from acfd_deploy.tritonrepo.repository import check_common, instance_threads, write_serve_repository

EXIT_STOPPED = 0
EXIT_SERVER_DIED = 1


@dataclass(frozen=True)
class ServeOptions:
    """What acfd-serve's flags say. ``model`` None: the bundled demo model."""

    model: str | None = None
    host: str = "127.0.0.1"
    http_port: int = 8000
    grpc_port: int = 8001
    metrics_port: int = 8002
    max_batch: int = DEFAULT_MAX_BATCH
    max_queue_delay_us: int = DEFAULT_QUEUE_DELAY_US
    instances: int = 1
    scales: tuple[tuple[int, int], ...] = (DEFAULT_SCALE,)
    keep_ratio: bool = False
    conf: float = 0.0  # leave out detections below this score (0: what acfd-detect writes)
    device: str = "auto"
    ready_timeout_s: float = 300.0
    require_verified: bool = False
    drain_timeout_s: int = EXIT_TIMEOUT_S  # Triton's --exit-timeout-secs: how long SIGTERM waits for requests in flight

    def check(self) -> None:
        """An :class:`AcfdError` for settings no server could run with."""
        if not 0.0 <= self.conf <= 1.0:
            raise AcfdError(f"--conf must be in [0, 1], got {self.conf}")
        ports = (self.http_port, self.grpc_port, self.metrics_port)
        if len(set(ports)) != 3:
            raise AcfdError(f"--http-port, --grpc-port and --metrics-port must differ (got {', '.join(map(str, ports))})")
        bad = [p for p in ports if not 1 <= p <= 65535]
        if bad:
            raise AcfdError(f"ports are 1..65535, got {bad[0]}")
        check_common(self.max_batch, self.max_queue_delay_us, self.instances)
        if not self.scales or any(min(s) < 1 for s in self.scales):
            raise AcfdError(f"bad test scale(s) {self.scales}")
        if not 1 <= self.drain_timeout_s <= 3600:
            raise AcfdError(f"--drain-timeout must be 1..3600 seconds, got {self.drain_timeout_s}")
        if self.ready_timeout_s <= 0:
            raise AcfdError(f"--ready-timeout must be positive, got {self.ready_timeout_s}")
        parse_device(self.device)


def _say(prog: str, text: str) -> None:
    print(f"{prog}: {text}", file=sys.stderr, flush=True)


def resolve_model(options: ServeOptions, prog: str = "acfd-serve") -> str:
    """The model reference to serve: ``options.model``, or the bundled demo model (said on
    stderr); a file that is missing or of a type no runner takes is bad input."""
    if options.model is None:
        from acfd_deploy.resources import demo_weights

        model = str(demo_weights())
        _say(prog, "no --model given: using the bundled demo model (acfd-tiny, trained on synthetic faces only)")
    else:
        model = options.model
    backend_for(model)  # an unknown suffix or scheme, before anything else
    if not is_url(model):
        require_file(model, "model file")
    return model


def probe_model(model: str, device: str, max_batch: int = 1) -> tuple[str, int, tuple[tuple[int, int], ...] | None]:
    """Load the model once, as each served instance will: ``(precision, min_size,
    scales)``, ``scales`` the test scales inside an end-to-end graph (None: a raw network)."""
    with load_runner(model, device=device, batch=max_batch) as runner:
        scales = tuple(runner.end2end.scales) if runner.end2end is not None else None
        return runner.precision, runner.min_size, scales


def end_to_end_scales(options: ServeOptions, graph_scales: tuple[tuple[int, int], ...]) -> tuple[tuple[int, int], ...]:
    """An end-to-end graph runs the scales it was exported with: asking for others is bad
    input (the graph cannot change them), the default is replaced by the graph's own."""
    asked = tuple(tuple(s) for s in options.scales)
    if asked not in (graph_scales, (DEFAULT_SCALE,)) or options.keep_ratio:
        shown = " + ".join(f"{h}x{w}" for h, w in graph_scales)
        raise AcfdError(
            f"the end-to-end model runs the test scale(s) it was exported with ({shown}); leave out --imgsz, --ms-test and "
            "--keep-ratio, or export again with acfd-export --end2end and those flags"
        )
    return graph_scales


class _Stop:
    """SIGTERM / SIGINT -> one graceful stop of the server; the main loop waits for it."""

    def __init__(self) -> None:
        self.requested = False
        self.server: Any = None
        self.previous: dict[int, Any] = {}

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True
        if self.server is not None:
            self.server.terminate()

    def install(self) -> None:
        try:
            self.previous = {s: signal.signal(s, self) for s in (signal.SIGTERM, signal.SIGINT)}
        except ValueError:  # not the main thread: the caller stops the server
            self.previous = {}

    def restore(self) -> None:
        for s, handler in self.previous.items():
            signal.signal(s, handler)


def serve(options: ServeOptions, prog: str = "acfd-serve") -> int:
    """Run acfd-serve until SIGTERM or Ctrl-C (0) or until the server dies (1); bad input
    raises :class:`AcfdError` before anything starts. Status lines go to stderr; the
    "ready" line, with the addresses, to stdout."""
    from acfd_deploy.serve.server import TritonServer, find_tritonserver
    from acfd_deploy.serve.stubenv import stub_numpy_site
    from acfd_deploy.tritonrepo.verified import provenance

    options.check()
    model = resolve_model(options, prog)
    found = provenance(model)
    _say(prog, found.describe())
    if options.require_verified:
        found.require_passed()
    find_tritonserver()  # a missing install before the slow part
    stub_numpy_site()
    precision, min_size, graph_scales = probe_model(model, options.device, options.max_batch)
    scales = options.scales if graph_scales is None else end_to_end_scales(options, graph_scales)
    models = (END_TO_END, ENGINE) if graph_scales is None else (END_TO_END, E2E)
    if graph_scales is not None:
        _say(prog, f"end-to-end model: resizing, test scale(s) and NMS run inside the graph; model '{E2E}' takes decoded pixels")

    threads = instance_threads(options.instances)
    stage = Path(tempfile.mkdtemp(prefix="acfd-serve-"))
    stop = _Stop()
    stop.install()
    try:
        repo = write_serve_repository(
            stage / "models",
            model,
            max_batch=options.max_batch,
            max_queue_delay_us=options.max_queue_delay_us,
            instances=options.instances,
            scales=scales,
            keep_ratio=options.keep_ratio,
            conf=options.conf,
            device=str(parse_device(options.device)),
            precision=precision,
            threads=threads,
            min_size=min_size,
            end_to_end_engine=graph_scales is not None,
        )
        server = TritonServer(
            repo,
            stage,
            host=options.host,
            http_port=options.http_port,
            grpc_port=options.grpc_port,
            metrics_port=options.metrics_port,
            exit_timeout_s=options.drain_timeout_s,
        )
        server.start()
        stop.server = server
        if stop.requested:  # a signal between start() and here
            server.terminate()
        _say(prog, f"starting tritonserver on {options.host} (models {', '.join(models)})")
        started = time.monotonic()
        server.wait_ready(options.ready_timeout_s, should_stop=lambda: stop.requested)
        if not stop.requested:
            print(
                f"{prog}: ready in {time.monotonic() - started:.0f} s: HTTP http://{server.http_url}, gRPC {server.grpc_url}, "
                f"metrics {server.metrics_url}; model '{END_TO_END}' (image bytes -> detections), "
                + (
                    f"'{ENGINE}' (triton://{server.grpc_url}/{ENGINE})"
                    if graph_scales is None
                    else f"'{E2E}' (decoded uint8 pixels -> detections)"
                ),
                flush=True,
            )
        code = server.wait()
        if stop.requested:
            _say(prog, f"stopped (tritonserver exit code {code})")
            return EXIT_STOPPED
        _say(prog, f"error: tritonserver exited on its own with code {code} (its log above says why)")
        return EXIT_SERVER_DIED
    finally:
        if stop.server is not None:
            stop.server.stop()
        stop.restore()
        shutil.rmtree(stage, ignore_errors=True)

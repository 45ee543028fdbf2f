"""Start, watch and stop PyTriton's bundled ``tritonserver`` with the environment its
Python backend needs.

The bundled server is used as a plain Triton server on a repository of our own (not
through PyTriton's proxy, which turns one failing request into an error for its whole
batch). Its Python backend starts one *stub* process per model instance, and the stub
needs two variables the launcher sets (:func:`server_environment`); nothing else changes:

* ``LD_LIBRARY_PATH`` starting with the running interpreter's ``LIBDIR``: the stub links
  ``libpython3.X.so.1.0`` by name, and the system's copy of another patch release (3.11.2
  under a pyenv 3.11.7, say) fails at model load (``'_thread.RLock' object has no attribute
  '_recursion_count'``). PyTriton's bundled libraries (``nvidia_pytriton.libs``) follow,
  because the stub is reached through a symlink of ours, not from its own folder.
* ``PATH`` starting with a staged virtual environment's ``bin``
  (:mod:`acfd_deploy.serve.stubenv`): the stub ignores ``PYTHONPATH`` and takes its
  ``sys.prefix`` from the first ``python3`` on ``PATH``; that environment gives it this
  interpreter's packages and ``acfd_deploy``, with a numpy<2 in front.

The backend folder is staged too (symlinks), with the stub that matches this Python
version, as PyTriton does, because the installed package keeps the stubs per version
elsewhere.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import os
import secrets
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from acfd_deploy.errors import AcfdError
from acfd_deploy.runtime.device import CUDA_RUNTIME, cuda_status

# nvidia-pytriton is installed without its dependencies: it pins numpy<2, and only its
# tritonserver binary and Python backend are used here (tritonclient comes with the extra)
PYTRITON_INSTALL = "pip install --no-deps 'nvidia-pytriton==0.7.*'"
# Triton waits this long for in-flight requests after SIGTERM (acfd-serve --drain-timeout);
# the launcher kills it a little later, so by default the whole shutdown stays under 30 s
EXIT_TIMEOUT_S = 25
KILL_MARGIN_S = 4.0
KILL_AFTER_S = EXIT_TIMEOUT_S + KILL_MARGIN_S


@dataclass(frozen=True)
class TritonDist:
    """Where the bundled server's pieces are."""

    binary: Path
    backend_python: Path  # libtriton_python.so and triton_python_backend_utils.py
    stub: Path  # triton_python_backend_stub for this Python version
    libs: Path  # the libraries the binary and the stub were linked against


def find_tritonserver() -> TritonDist:
    """PyTriton's bundled server, or an :class:`AcfdError` naming the extra to install."""
    spec = importlib.util.find_spec("pytriton")
    if spec is None or spec.origin is None:
        raise AcfdError(f"Triton Inference Server is not installed: {PYTRITON_INSTALL} (for its bundled tritonserver)")
    package = Path(spec.origin).parent
    root = package / "tritonserver"
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    dist = TritonDist(
        binary=root / "bin" / "tritonserver",
        backend_python=root / "backends" / "python",
        stub=root / "python_backend_stubs" / version / "triton_python_backend_stub",
        libs=package.parent / "nvidia_pytriton.libs",
    )
    if not dist.binary.is_file() or not (dist.backend_python / "libtriton_python.so").is_file():
        raise AcfdError(f"nvidia-pytriton at {package} has no tritonserver binary or Python backend; reinstall: {PYTRITON_INSTALL}")
    if not dist.stub.is_file():
        have = sorted(p.name for p in (root / "python_backend_stubs").iterdir()) if (root / "python_backend_stubs").is_dir() else []
        raise AcfdError(f"nvidia-pytriton has no Python-backend stub for Python {version} (it has: {', '.join(have) or 'none'})")
    return dist


def stage_backends(stage_dir: str | os.PathLike[str], dist: TritonDist) -> Path:
    """``<stage>/backends/python`` with the backend library, its utils and this Python's
    stub (symlinks): the folder to pass as ``--backend-directory``."""
    backends = Path(stage_dir) / "backends"
    python = backends / "python"
    python.mkdir(parents=True, exist_ok=True)
    links = {
        "libtriton_python.so": dist.backend_python / "libtriton_python.so",
        "triton_python_backend_utils.py": dist.backend_python / "triton_python_backend_utils.py",
        "triton_python_backend_stub": dist.stub,
    }
    for name, source in links.items():
        target = python / name
        if target.is_symlink() or target.exists():
            target.unlink()
        target.symlink_to(source)
    return backends


def _join(*parts: str | None) -> str:
    seen: list[str] = []
    for part in parts:
        for item in (part or "").split(os.pathsep):
            if item and item not in seen:
                seen.append(item)
    return os.pathsep.join(seen)


def server_environment(dist: TritonDist, stub_bin: Path, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The server's environment: ``base`` (default ``os.environ``) with ``LD_LIBRARY_PATH``
    and ``PATH`` set as the module docstring explains; ``stub_bin`` from
    :func:`~acfd_deploy.serve.stubenv.stage_stub_env`."""
    env = dict(os.environ if base is None else base)
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    env["LD_LIBRARY_PATH"] = _join(libdir, str(dist.libs), env.get("LD_LIBRARY_PATH"))
    env["PATH"] = _join(str(stub_bin), env.get("PATH", os.defpath))
    return env


def has_gpu() -> bool:
    """Whether the server process can use a CUDA device (GPU metrics and pinned memory are
    then worth asking for): the runtime layer's one device answer."""
    return cuda_status(CUDA_RUNTIME).usable


def port_is_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS says is free now (for tests and the load benchmark)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _probe_host(host: str) -> str:
    return "127.0.0.1" if host in ("", "0.0.0.0") else "::1" if host == "::" else host


def _die_with_parent() -> Any:
    """A ``preexec_fn`` that makes the server get SIGTERM if the launcher dies (Linux), so a
    killed test run or a crashed launcher leaves no server behind."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def preexec() -> None:
        prctl(pr_set_pdeathsig, signal.SIGTERM)

    return preexec


class TritonServer:
    """One ``tritonserver`` process on a model repository, loopback by default.

    ``start()``, ``wait_ready()``, then either ``wait()`` or ``stop()`` (SIGTERM: Triton
    stops answering health checks and new connections at once, finishes the requests it
    has for up to ``exit_timeout_s``, and exits; the launcher kills it
    :data:`KILL_MARGIN_S` later). Also a context manager.
    """

    def __init__(
        self,
        repository: str | os.PathLike[str],
        stage_dir: str | os.PathLike[str],
        *,
        host: str = "127.0.0.1",
        http_port: int = 8000,
        grpc_port: int = 8001,
        metrics_port: int = 8002,
        exit_timeout_s: int = EXIT_TIMEOUT_S,
        log_verbose: int = 0,
        extra_args: Sequence[str] = (),
        stdout: IO[Any] | int | None = None,
        stderr: IO[Any] | int | None = None,
    ) -> None:
        self.repository = Path(repository)
        self.stage_dir = Path(stage_dir)
        self.host = host
        self.http_port, self.grpc_port, self.metrics_port = http_port, grpc_port, metrics_port
        self.exit_timeout_s = exit_timeout_s
        self.kill_after_s = exit_timeout_s + KILL_MARGIN_S
        self.log_verbose = log_verbose
        self.extra_args = list(extra_args)
        self.stdout, self.stderr = stdout, stderr
        self.dist = find_tritonserver()
        self.process: subprocess.Popen[bytes] | None = None
        self.terminated_at: float | None = None

    @property
    def probe_host(self) -> str:
        return _probe_host(self.host)

    @property
    def http_url(self) -> str:
        return f"{self.probe_host}:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"{self.probe_host}:{self.grpc_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.probe_host}:{self.metrics_port}/metrics"

    def command(self, backend_dir: Path) -> list[str]:
        gpu = has_gpu()
        shm_prefix = f"acfd{os.getpid()}{secrets.token_hex(3)}_"  # two servers on one host must not share regions
        cmd = [
            str(self.dist.binary),
            f"--model-repository={self.repository}",
            f"--backend-directory={backend_dir}",
            f"--http-address={self.host}",
            f"--http-port={self.http_port}",
            f"--grpc-address={self.host}",
            f"--grpc-port={self.grpc_port}",
            "--allow-metrics=true",
            f"--metrics-address={self.host}",
            f"--metrics-port={self.metrics_port}",
            f"--allow-gpu-metrics={'true' if gpu else 'false'}",
            f"--exit-timeout-secs={self.exit_timeout_s}",
            "--strict-readiness=true",
            "--exit-on-error=true",
            f"--log-verbose={self.log_verbose}",
            f"--backend-config=python,shm-region-prefix-name={shm_prefix}",
        ]
        if not gpu:  # no CUDA here: skip the pinned pool instead of warning about it
            cmd.append("--pinned-memory-pool-byte-size=0")
        return cmd + self.extra_args

    def start(self) -> None:
        if self.process is not None:
            raise AcfdError("this server was already started")
        for name, port in (("HTTP", self.http_port), ("gRPC", self.grpc_port), ("metrics", self.metrics_port)):
            if not port_is_free(self.host, port):
                raise AcfdError(f"the {name} port {port} on {self.host} is in use (choose another with --{name.lower()}-port)")
        from acfd_deploy.serve.stubenv import stage_stub_env

        stub_bin = stage_stub_env(self.stage_dir)
        backend_dir = stage_backends(self.stage_dir, self.dist)
        self.process = subprocess.Popen(
            self.command(backend_dir),
            env=server_environment(self.dist, stub_bin),
            stdin=subprocess.DEVNULL,
            stdout=self.stdout,
            stderr=self.stderr,
            start_new_session=True,  # a terminal's Ctrl-C reaches the launcher, which sends one SIGTERM
            preexec_fn=_die_with_parent(),
        )

    def poll(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def is_ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.http_url}/v2/health/ready", timeout=2) as resp:
                return int(resp.status) == 200
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def wait_ready(self, timeout_s: float = 300.0, should_stop: Any = None) -> None:
        """Until ``/v2/health/ready`` answers 200 (every model loaded) or ``should_stop()``
        says so; an :class:`AcfdError` if the server exits first or ``timeout_s`` passes."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if should_stop is not None and should_stop():  # stopping on purpose: not an error
                return
            code = self.poll()
            if code is not None:
                raise AcfdError(f"tritonserver exited with code {code} before it was ready (its log says why)")
            if self.is_ready():
                return
            time.sleep(0.25)
        raise AcfdError(f"tritonserver was not ready after {timeout_s:.0f} s")

    def terminate(self) -> None:
        """Send SIGTERM once (graceful: in-flight requests finish)."""
        if self.process is not None and self.process.poll() is None and self.terminated_at is None:
            self.terminated_at = time.monotonic()
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)

    def kill_if_overdue(self, kill_after_s: float | None = None) -> None:
        kill_after_s = self.kill_after_s if kill_after_s is None else kill_after_s
        overdue = self.terminated_at is not None and time.monotonic() - self.terminated_at > kill_after_s
        if self.process is not None and overdue and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()

    def wait(self, poll_s: float = 0.2) -> int:
        """Until the process exits (killing it if a SIGTERM is overdue); its exit code."""
        assert self.process is not None
        while self.process.poll() is None:
            self.kill_if_overdue()
            time.sleep(poll_s)
        return int(self.process.returncode)

    def stop(self, kill_after_s: float | None = None) -> int | None:
        """SIGTERM, wait (at most ``kill_after_s``, default the drain timeout and a margin),
        then SIGKILL; the exit code."""
        if self.process is None:
            return None
        kill_after_s = self.kill_after_s if kill_after_s is None else kill_after_s
        self.terminate()
        try:
            return self.process.wait(timeout=kill_after_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def __enter__(self) -> TritonServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

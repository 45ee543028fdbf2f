"""Triton runner: the raw network on a Triton server, through gRPC, as a :class:`Runner`.

    acfd-detect images/ --model triton://127.0.0.1:8001/acfd_engine

Decoding, resizing and post-processing stay on the client (the :class:`Detector`); only
``images [B, 3, H, W]`` -> ``boxes, scores`` crosses the network, so any Triton server that
hosts an ACFD engine (acfd-serve's, or the stock server on a repository from acfd-export
``--triton-repo``) gives the detections of the same artifact run in-process.

Precision is the model config's ``precision`` parameter, which both repositories of
acfd-deploy record; a server whose config does not say reads ``unknown`` (a guess of fp32
would mislabel an fp16 or int8 engine in acfd-bench's tables).

The runner registry reaches it by the URL scheme (``load_runner("triton://...")``), so
every command that takes ``--model`` takes a server. ``device`` is accepted and ignored:
where the network runs is the server's configuration (its instance groups), and
``--device`` keeps meaning the client's side (acfd-bench resolves ``auto`` to this
machine's device and passes it to every target, a server's included).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from typing import Any

import numpy as np

from acfd_deploy.errors import AcfdError, one_line
from acfd_deploy.runtime.base import DEFAULT_MIN_SIZE, Runner
from acfd_deploy.runtime.device import Device, parse_device, resolve_device

SCHEME = "triton"
DEFAULT_GRPC_PORT = 8001
SERVE_EXTRA = "pip install 'acfd-deploy[serve]'"
# how much of a server's error message an AcfdError quotes
MESSAGE_LIMIT = 200


def parse_triton_url(url: str) -> tuple[str, int, str, str]:
    """``triton://host[:port]/model[/version]`` -> ``(host, port, model, version)``;
    the port defaults to Triton's gRPC port 8001, the version to "" (the server's latest)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() != SCHEME or not parts.hostname:
        raise AcfdError(f"expected triton://host:port/model, got {url!r}")
    try:
        port = parts.port or DEFAULT_GRPC_PORT
    except ValueError:
        raise AcfdError(f"bad port in {url!r}") from None
    path = [p for p in parts.path.split("/") if p]
    if not path or len(path) > 2:
        raise AcfdError(f"expected triton://host:port/model or triton://host:port/model/version, got {url!r}")
    version = path[1] if len(path) == 2 else ""
    if version and not version.isdigit():
        raise AcfdError(f"the model version in {url!r} must be a number, got {version!r}")
    return parts.hostname, port, path[0], version


def _import_grpc() -> Any:
    try:
        import tritonclient.grpc as grpcclient
    except ImportError:
        raise AcfdError(f"the triton:// runner needs tritonclient: {SERVE_EXTRA}") from None
    return grpcclient


def flat_parameters(params: Mapping[str, Any]) -> dict[str, str]:
    """Model-config ``parameters`` as ``{key: "value"}``, from that form or Triton's JSON
    form ``{key: {"string_value": "value"}}``."""
    return {k: (v.get("string_value", "") if isinstance(v, Mapping) else str(v)) for k, v in params.items()}


def _signature(meta: Mapping[str, Any]) -> str:
    def one(t: Mapping[str, Any]) -> str:
        return f"{t.get('name')} {t.get('datatype')} {[int(d) for d in t.get('shape', [])]}"

    return f"inputs {', '.join(one(t) for t in meta.get('inputs', []))}; outputs {', '.join(one(t) for t in meta.get('outputs', []))}"


def check_engine_signature(meta: Mapping[str, Any]) -> None:
    """An ACFD engine: one input ``images`` FP32 ``[B, 3, H, W]``; outputs ``boxes`` FP32
    ``[B, N, 4]`` and ``scores`` FP32 ``[B, N]`` (shapes from the model metadata, batch dim
    included). Raises :class:`AcfdError` saying what the model has instead."""
    inputs = {t["name"]: t for t in meta.get("inputs", [])}
    outputs = {t["name"]: t for t in meta.get("outputs", [])}

    def shape(t: Mapping[str, Any]) -> list[int]:
        return [int(d) for d in t.get("shape", [])]

    ok = (
        list(inputs) == ["images"]
        and inputs["images"].get("datatype") == "FP32"
        and len(shape(inputs["images"])) == 4
        and shape(inputs["images"])[1] == 3
        and {"boxes", "scores"} <= set(outputs)
        and outputs["boxes"].get("datatype") == "FP32"
        and outputs["scores"].get("datatype") == "FP32"
        and len(shape(outputs["boxes"])) == 3
        and shape(outputs["boxes"])[-1] == 4
        and len(shape(outputs["scores"])) == 2
    )
    if not ok:
        raise AcfdError(
            f"model {meta.get('name')!r} is not an ACFD engine: expected input images FP32 [B,3,H,W] and outputs "
            f"boxes FP32 [B,N,4], scores FP32 [B,N]; it has {_signature(meta)}"
        )


class TritonRunner(Runner):
    """``infer(images [B,3,H,W] float32 0..255) -> (boxes [B,N,4], scores [B,N])`` on a
    Triton server. Batches larger than the model's ``max_batch_size`` are split.

    The registry's factory for ``triton://``: ``device`` is accepted and ignored (the
    server decides where its model runs; see the module docstring)."""

    client: Any = None  # until connected; None again once closed

    def __init__(self, url: str, device: str | Device = "auto", timeout_s: float = 10.0, name: str | None = None) -> None:
        grpcclient = _import_grpc()
        from tritonclient.utils import InferenceServerException

        self._error = InferenceServerException
        self._grpc = grpcclient
        self.url = url
        host, port, model, version = parse_triton_url(url)
        self.address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.model, self.version = model, version
        self.timeout_s = timeout_s
        # the client's side (see the module docstring): where the pipeline around it runs
        requested = parse_device(device)
        self.device = resolve_device(requested) if requested.kind == "auto" else requested
        try:
            self.client = grpcclient.InferenceServerClient(self.address)
            self.client.is_server_live(client_timeout=timeout_s)
        except InferenceServerException as exc:
            raise AcfdError(f"cannot reach a Triton server at {self.address} ({one_line(exc, MESSAGE_LIMIT)})") from None
        try:
            ready = self.client.is_model_ready(model, version, client_timeout=timeout_s)
        except InferenceServerException:
            ready = False
        if not ready:
            raise AcfdError(
                f"the Triton server at {self.address} has no ready model {model!r}{' version ' + version if version else ''} "
                f"(ready: {', '.join(self._ready_models()) or 'none'})"
            )
        try:
            meta = self.client.get_model_metadata(model, version, as_json=True, client_timeout=timeout_s)
            config = self.client.get_model_config(model, version, as_json=True, client_timeout=timeout_s).get("config", {})
        except InferenceServerException as exc:
            raise AcfdError(f"cannot read model {model!r} from {self.address} ({one_line(exc, MESSAGE_LIMIT)})") from None
        check_engine_signature(meta)
        params = flat_parameters(config.get("parameters", {}))
        self.max_batch = int(config.get("max_batch_size", 0) or 0)
        self.precision = params.get("precision") or "unknown"
        try:
            self.min_size = int(params.get("min_size") or DEFAULT_MIN_SIZE)
        except ValueError:
            self.min_size = DEFAULT_MIN_SIZE
        self.name = name or f"triton:{self.address}/{model}"

    def _ready_models(self) -> list[str]:
        try:
            index = self.client.get_model_repository_index(as_json=True, client_timeout=self.timeout_s)
        except self._error:
            return []
        return sorted({m["name"] for m in index.get("models", []) if m.get("state") == "READY"})

    def _infer_chunk(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        tensor = self._grpc.InferInput("images", list(images.shape), "FP32")
        tensor.set_data_from_numpy(images)
        outputs = [self._grpc.InferRequestedOutput("boxes"), self._grpc.InferRequestedOutput("scores")]
        try:
            result = self.client.infer(self.model, [tensor], model_version=self.version, outputs=outputs)
        except self._error as exc:
            raise AcfdError(f"{self.url}: {one_line(exc, MESSAGE_LIMIT)}") from None
        # as_numpy views the response buffer (read-only): copies, which callers may write to
        return np.array(result.as_numpy("boxes"), np.float32), np.array(result.as_numpy("scores"), np.float32)

    def infer(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        images = np.ascontiguousarray(images, dtype=np.float32)
        if images.ndim != 4 or images.shape[1] != 3:
            raise AcfdError(f"images must be [B,3,H,W], got shape {images.shape}")
        step = self.max_batch if self.max_batch > 0 else len(images)
        parts = [self._infer_chunk(images[i : i + step]) for i in range(0, len(images), max(1, step))]
        if len(parts) == 1:
            return parts[0]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def close(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            client.close()

"""The TensorRT plan format as this project writes it: a plain plan file (trtexec and
Triton load it) plus a sidecar JSON that says what the plan is bound to.

An engine only runs on the TensorRT version and GPU architecture that built it. The
sidecar records both (and the profile, precision and hashes), and :func:`check_sidecar`
compares it with the GPU the plan is about to run on before anything is deserialized.
This module is pure Python: the export side writes sidecars, the runtime side reads them,
and neither needs the other's dependencies.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from acfd_deploy.errors import AcfdError
from acfd_deploy.fileio import atomic_path

SIDECAR_FORMAT = "acfd-tensorrt-plan/1"
INPUT_NAME = "images"
PLAN_SUFFIXES = (".plan", ".engine")
UNKNOWN = "unknown"


class EngineMismatchError(AcfdError):
    """A plan built by another TensorRT version or for another GPU, or one whose origin
    cannot be established."""


def gpu_info(index: int = 0) -> dict[str, str]:
    """Name and compute capability of GPU ``index`` (what an engine is bound to);
    ``unknown`` where no CUDA runtime answers."""
    try:
        import torch

        if torch.cuda.is_available() and index < torch.cuda.device_count():
            major, minor = torch.cuda.get_device_capability(index)
            return {"gpu": torch.cuda.get_device_name(index), "compute_capability": f"{major}.{minor}"}
    except Exception:
        pass
    try:  # without a CUDA build of torch, ask the CUDA runtime through cuda-python if present
        from cuda.bindings import runtime as cudart  # type: ignore[import-not-found,unused-ignore]

        err, props = cudart.cudaGetDeviceProperties(index)
        if int(err) == 0:
            return {"gpu": props.name.decode().rstrip("\x00"), "compute_capability": f"{props.major}.{props.minor}"}
    except Exception:
        pass
    return {"gpu": UNKNOWN, "compute_capability": UNKNOWN}


def profile_covers(profile: Mapping[str, Sequence[int]], shape: Sequence[int]) -> bool:
    return all(lo <= s <= hi for lo, s, hi in zip(profile["min"], shape, profile["max"]))


def make_sidecar(
    *,
    trt_version: str,
    gpu: Mapping[str, str],
    precision: str,
    profile: Mapping[str, Sequence[int]],
    onnx_path: str | os.PathLike[str],
    onnx_sha256: str,
    plan_sha256: str,
    workspace_bytes: int,
    layer_precisions: Mapping[str, Any] | None = None,
    polygraphy_version: str | None = None,
    pixel_mean: Sequence[float] | None = None,
) -> dict[str, Any]:
    return {
        "format": SIDECAR_FORMAT,
        "tensorrt_version": trt_version,
        "polygraphy_version": polygraphy_version,
        "gpu": gpu.get("gpu", UNKNOWN),
        "compute_capability": gpu.get("compute_capability", UNKNOWN),
        "precision": precision,
        "input": INPUT_NAME,
        "profile": {k: list(v) for k, v in profile.items()},
        "onnx": Path(onnx_path).name,
        "onnx_sha256": onnx_sha256,
        "plan_sha256": plan_sha256,
        "workspace_bytes": workspace_bytes,
        "layer_precisions": dict(layer_precisions or {}),
        # what the graph subtracts (from the ONNX file's metadata): the pipeline pads with it
        "pixel_mean": [float(v) for v in pixel_mean] if pixel_mean is not None else None,
        "built_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def sidecar_path(plan_path: str | os.PathLike[str]) -> Path:
    return Path(f"{plan_path}.json")


def write_sidecar(plan_path: str | os.PathLike[str], sidecar: Mapping[str, Any]) -> Path:
    path = sidecar_path(plan_path)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(sidecar, indent=2, sort_keys=True) + "\n")
    return path


def read_sidecar(plan_path: str | os.PathLike[str]) -> dict[str, Any]:
    path = sidecar_path(plan_path)
    if not path.is_file():
        raise EngineMismatchError(
            f"{plan_path} has no sidecar {path.name}: cannot tell which TensorRT and GPU built it; rebuild with acfd-export"
        )
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise EngineMismatchError(f"{path} is not readable JSON ({exc}); rebuild with acfd-export") from None
    if not isinstance(data, dict) or data.get("format") != SIDECAR_FORMAT:
        raise EngineMismatchError(f"{path} is not an acfd-deploy plan sidecar ({SIDECAR_FORMAT}); rebuild with acfd-export")
    return data


def _known(value: object) -> bool:
    return isinstance(value, str) and bool(value) and value != UNKNOWN


def check_sidecar(sidecar: Mapping[str, Any], trt_version: str, gpu: Mapping[str, str], plan_sha256: str | None = None) -> None:
    """Raise :class:`EngineMismatchError` (saying to rebuild) unless the plan was built by
    this TensorRT version for a GPU of this compute capability, and the plan file is the
    one the sidecar describes.

    "unknown" never matches anything, itself included: a sidecar written where the GPU
    could not be read, or a GPU that cannot be read now, is not evidence of a match."""
    problems = []
    if not _known(sidecar.get("tensorrt_version")) or sidecar.get("tensorrt_version") != trt_version:
        problems.append(f"built with TensorRT {sidecar.get('tensorrt_version')}, this is TensorRT {trt_version}")
    built_cc, here_cc = sidecar.get("compute_capability"), gpu.get("compute_capability", UNKNOWN)
    if not _known(built_cc) or not _known(here_cc) or built_cc != here_cc:
        problems.append(
            f"built for {sidecar.get('gpu')} (compute capability {built_cc}), "
            f"this GPU is {gpu.get('gpu', UNKNOWN)} (compute capability {here_cc})"
        )
    if plan_sha256 is not None and sidecar.get("plan_sha256") != plan_sha256:
        problems.append("the plan file does not match its sidecar's sha256")
    if problems:
        raise EngineMismatchError(
            f"TensorRT engine mismatch: {'; '.join(problems)}. Engines are bound to the TensorRT version and GPU: rebuild with acfd-export"
        )


def plan_precision(plan_path: str | os.PathLike[str]) -> str:
    """The precision a plan's sidecar records (``unknown`` without a readable sidecar)."""
    try:
        return str(read_sidecar(plan_path).get("precision", UNKNOWN))
    except EngineMismatchError:
        return UNKNOWN

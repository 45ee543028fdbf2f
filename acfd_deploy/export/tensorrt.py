"""TensorRT engines through Polygraphy, one path for TensorRT 10 and 11.

TensorRT 11 removed the builder precision flags and the INT8 calibrator and makes every
network strongly typed (docs/design.md#tensorrt-10-and-11). So the precision is decided in the ONNX
file (fp32 ONNX, fp16 ONNX with fp32 I/O, Q/DQ int8 ONNX), and the network is parsed
strongly typed on TensorRT 10 too, where precision flags are then not allowed either:
the engine computes in the types the file states, on both versions.

The pure parts (profile, sidecar, engine-precision check on the inspector's JSON) are
plain functions tested everywhere; :func:`build_engine` needs TensorRT and a GPU.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from acfd_deploy.errors import AcfdError
from acfd_deploy.export.fp16 import PrecisionError
from acfd_deploy.fileio import atomic_path, sha256_file
from acfd_deploy.runtime.base import contract_from_metadata
from acfd_deploy.runtime.device import cuda_status
from acfd_deploy.runtime.onnx_runner import onnx_metadata
from acfd_deploy.runtime.plan import INPUT_NAME, gpu_info, make_sidecar, write_sidecar

# the paper's multi-scale test (H x W); the profile covers all three
TEST_SCALES: tuple[tuple[int, int], ...] = ((480, 645), (640, 860), (800, 1075))
# layers that do the arithmetic whose precision matters (names as the inspector reports them)
_COMPUTE_LAYER_TYPES = ("convolution", "gemm", "matrixmultiply", "deconvolution")


# ---------------------------------------------------------------- availability


def tensorrt_status() -> tuple[bool, str]:
    """``(True, version)`` when TensorRT, Polygraphy and a CUDA GPU are all present, else
    ``(False, why)`` with a reason fit for the line "TensorRT: skipped (why)": the runtime
    layer's one device answer (:func:`~acfd_deploy.runtime.device.cuda_status`)."""
    answer = cuda_status("tensorrt")
    if not answer.usable:
        return False, answer.reason
    import tensorrt as trt

    return True, str(trt.__version__)


# ---------------------------------------------------------------- profile


def engine_profile(
    imgsz: tuple[int, int], batch: int, min_side: int, scales: Sequence[tuple[int, int]] = TEST_SCALES
) -> dict[str, list[int]]:
    """One optimization profile for input ``images``: batch 1..``batch`` (optimal at
    ``batch``), heights and widths from ``min_side`` (the network's minimum) up to the
    largest of the test scales and ``imgsz``, optimal at ``imgsz``."""
    if batch < 1:
        raise AcfdError(f"the engine's batch must be at least 1, got {batch}")
    h, w = imgsz
    if min(h, w) < min_side:
        raise AcfdError(f"--imgsz {h} {w} is below the minimum side {min_side}")
    max_h = max([h, *(s[0] for s in scales)])
    max_w = max([w, *(s[1] for s in scales)])
    return {"min": [1, 3, min_side, min_side], "opt": [batch, 3, h, w], "max": [batch, 3, max_h, max_w]}


# ---------------------------------------------------------------- engine precision


def _tensor_precision(fmt: str) -> str:
    """The data type in an inspector "Format/Datatype" string ("Row major linear FP32",
    "Channel major FP16 format where channel % 8 == 0", "Thirty-two wide channel
    vectorized row major Int8 format.", "Half", "Float", "Int8" ...)."""
    text = fmt.lower()
    if "n/a" in text:
        return "unknown"
    if "int8" in text:
        return "int8"
    if "fp8" in text:
        return "fp8"
    if "bf16" in text:
        return "bf16"
    if "fp16" in text or "half" in text:
        return "fp16"
    if "fp32" in text or "float" in text:
        return "fp32"
    return "unknown"


def _layer_precision(layer: Mapping[str, Any]) -> str:
    """A compute layer's precision: that of its first input (the activations it reads;
    for a convolution that is what it multiplies with its weights)."""
    for tensor in layer.get("Inputs", ()) or ():
        if isinstance(tensor, Mapping):
            p = _tensor_precision(str(tensor.get("Format/Datatype", "")))
            if p != "unknown":
                return p
    return "unknown"


def engine_precisions(info: Mapping[str, Any] | str) -> dict[str, Any]:
    """Summarize the inspector's JSON (``get_engine_information(JSON)`` of an engine built
    with ``ProfilingVerbosity.DETAILED``): the precision counts of the compute layers
    (convolutions, GEMMs) and of all layers."""
    data = json.loads(info) if isinstance(info, str) else info
    layers = data.get("Layers", [])
    if layers and not isinstance(layers[0], Mapping):
        raise PrecisionError("the engine holds layer names only: build it with ProfilingVerbosity.DETAILED to check its precision")
    compute: Counter[str] = Counter()
    every: Counter[str] = Counter()
    for layer in layers:
        p = _layer_precision(layer)
        every[p] += 1
        kind = str(layer.get("LayerType", "")).lower() + " " + str(layer.get("ParameterType", "")).lower()
        if any(t in kind for t in _COMPUTE_LAYER_TYPES):
            compute[p] += 1
    return {"compute_layers": dict(compute), "all_layers": dict(every)}


def check_engine_precision(info: Mapping[str, Any] | str, requested: str, min_fraction: float = 0.5) -> dict[str, Any]:
    """Fail loudly unless the engine runs its compute layers in ``requested`` precision:
    at least ``min_fraction`` of them (the head's final convolutions and the decode tail
    stay fp32 by design, so not all). Returns the summary for the sidecar."""
    if requested not in ("fp32", "fp16", "int8"):
        raise ValueError(f"unknown precision {requested!r}")
    summary = engine_precisions(info)
    counts = summary["compute_layers"] or summary["all_layers"]
    known = {k: v for k, v in counts.items() if k != "unknown"}
    if not known:
        raise PrecisionError("the engine inspector reported no layer data types (set the input shape on the inspector's execution context)")
    hits = known.get(requested, 0)
    fraction = hits / sum(known.values())
    summary.update(requested=requested, fraction=round(fraction, 4))
    if hits == 0 or fraction < min_fraction:
        raise PrecisionError(
            f"the TensorRT engine was asked for {requested} but runs {hits} of {sum(known.values())} compute layers in it "
            f"({', '.join(f'{k}: {v}' for k, v in sorted(known.items()))}); refusing to ship it"
        )
    return summary


# ---------------------------------------------------------------- build


def default_timing_cache(trt_version: str, gpu: Mapping[str, str]) -> Path:
    """One timing cache per TensorRT version and GPU architecture, reused across builds."""
    root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "acfd-deploy" / "tensorrt"
    cc = gpu.get("compute_capability", "unknown").replace(".", "")
    return root / f"timing-trt{trt_version}-sm{cc}.cache"


def _trt_major(version: str) -> int:
    try:
        return int(version.split(".")[0])
    except ValueError:
        return 0


def _use_device(index: int) -> None:
    """Make GPU ``index`` current, so the engine is built (and timed) on the GPU whose
    compute capability the sidecar records."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.set_device(index)
    elif index != 0:
        raise AcfdError(f"cannot select GPU {index} without a CUDA build of torch")


def inspect_engine(engine: Any, shape: Sequence[int]) -> dict[str, Any]:
    """The inspector's JSON for ``engine`` with the input set to ``shape`` (without a
    shape every dynamic tensor reads "N/A due to dynamic shapes")."""
    import tensorrt as trt

    context = engine.create_execution_context()
    context.set_input_shape(INPUT_NAME, tuple(shape))
    inspector = engine.create_engine_inspector()
    inspector.execution_context = context
    return json.loads(inspector.get_engine_information(trt.LayerInformationFormat.JSON))


def build_engine(
    onnx_path: str | os.PathLike[str],
    plan_path: str | os.PathLike[str],
    precision: str,
    profile: Mapping[str, Sequence[int]],
    workspace_gib: float = 4.0,
    timing_cache: str | os.PathLike[str] | None = None,
    device_index: int = 0,
) -> dict[str, Any]:
    """Build a plan from ``onnx_path`` (whose types decide the precision), check that it
    really runs in ``precision``, and write ``plan_path`` and its sidecar atomically.
    Returns the sidecar."""
    import polygraphy
    import tensorrt as trt
    from polygraphy.backend.trt import CreateConfig, EngineBytesFromNetwork, NetworkFromOnnxPath, Profile, engine_from_bytes

    trt_version = str(trt.__version__)
    _use_device(device_index)
    gpu = gpu_info(device_index)
    cache = Path(timing_cache) if timing_cache is not None else default_timing_cache(trt_version, gpu)
    cache.parent.mkdir(parents=True, exist_ok=True)
    # TensorRT 11 networks are always strongly typed; on 10 ask for it, so both versions
    # take the precision from the ONNX file and neither needs the FP16/INT8 flags
    strongly_typed = True if _trt_major(trt_version) == 10 else None
    build_from = Path(onnx_path)
    tmpdir = None
    if precision == "int8":  # TensorRT wants signed, symmetric int8 Q/DQ (see export.int8)
        import tempfile

        import onnx

        from acfd_deploy.export.int8 import tensorrt_qdq

        tmpdir = tempfile.TemporaryDirectory(prefix="acfd-trt-")
        build_from = Path(tmpdir.name) / Path(onnx_path).name
        onnx.save(tensorrt_qdq(onnx.load(str(onnx_path))), str(build_from))
    network = NetworkFromOnnxPath(str(build_from), strongly_typed=strongly_typed)
    workspace = int(workspace_gib * (1 << 30))
    config = CreateConfig(
        profiles=[Profile().add(INPUT_NAME, min=tuple(profile["min"]), opt=tuple(profile["opt"]), max=tuple(profile["max"]))],
        load_timing_cache=str(cache) if cache.exists() else None,
        memory_pool_limits={trt.MemoryPoolType.WORKSPACE: workspace},
        profiling_verbosity=trt.ProfilingVerbosity.DETAILED,
    )
    try:
        engine_bytes = EngineBytesFromNetwork(network, config, save_timing_cache=str(cache))()
    finally:
        if tmpdir is not None:
            tmpdir.cleanup()
    engine = engine_from_bytes(engine_bytes)
    layers = check_engine_precision(inspect_engine(engine, profile["opt"]), precision)
    with atomic_path(plan_path) as tmp:
        tmp.write_bytes(bytes(engine_bytes))
    sidecar = make_sidecar(
        trt_version=trt_version,
        gpu=gpu,
        precision=precision,
        profile=profile,
        onnx_path=onnx_path,
        onnx_sha256=sha256_file(onnx_path),
        plan_sha256=sha256_file(plan_path),
        workspace_bytes=workspace,
        layer_precisions=layers,
        polygraphy_version=getattr(polygraphy, "__version__", None),
        pixel_mean=contract_from_metadata(onnx_metadata(onnx_path))[1],
    )
    if precision == "int8":
        sidecar["onnx_note"] = "built from the int8 ONNX with its uint8 activation Q/DQ rewritten to symmetric int8 (tensorrt_qdq)"
    try:
        write_sidecar(plan_path, sidecar)
    except BaseException:
        Path(plan_path).unlink(missing_ok=True)
        raise
    sidecar["timing_cache"] = str(cache)
    return sidecar

"""Exporting the folded network to ONNX, checking it, simplifying it only when that
changes nothing, and stamping it with metadata that Netron and users can read."""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn

from acfd_deploy.errors import one_line
from acfd_deploy.fileio import atomic_path
from acfd_deploy.runtime.onnx_runner import onnx_metadata

INPUT_NAME = "images"
OUTPUT_NAMES = ("boxes", "scores")
DEFAULT_OPSET = 17
# the outputs of a simplified graph may differ from the original's by float reordering
# only: ten times tighter than the fp32 parity tolerance
SIMPLIFY_TOL = 1e-5


def export_onnx(model: nn.Module, opset: int = DEFAULT_OPSET, sample_size: tuple[int, int] = (256, 320)) -> onnx.ModelProto:
    """Trace ``model`` (the folded graph, eval mode) to ONNX with dynamic batch, height
    and width, run the full ONNX checker, and return the model in memory (artifacts are
    written by :func:`save_onnx`, atomically).

    The TorchScript exporter (``dynamo=False``) is used: it needs no onnxscript, gives a
    compact graph (Resize to the target tensor's Shape, Range for anchors) and ONNX
    Runtime matches PyTorch at sizes other than the traced one."""
    model = model.eval()
    images = torch.zeros(1, 3, *sample_size)
    images += torch.linspace(0, 255, sample_size[1])  # any non-constant image
    dynamic = {
        INPUT_NAME: {0: "batch", 2: "height", 3: "width"},
        OUTPUT_NAMES[0]: {0: "batch", 1: "anchors"},
        OUTPUT_NAMES[1]: {0: "batch", 1: "anchors"},
    }
    with tempfile.TemporaryDirectory(prefix="acfd-export-") as tmpdir, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tmp = Path(tmpdir) / "model.onnx"
        torch.onnx.export(
            model,
            (images,),
            str(tmp),
            dynamo=False,
            opset_version=opset,
            input_names=[INPUT_NAME],
            output_names=list(OUTPUT_NAMES),
            dynamic_axes=dynamic,
            do_constant_folding=True,
        )
        proto = onnx.load(str(tmp))
    onnx.checker.check_model(proto, full_check=True)
    check_io_contract(proto)
    return proto


def _dims(value_info: onnx.ValueInfoProto) -> list[str | int]:
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


def check_io_contract(proto: onnx.ModelProto) -> None:
    """Input ``images`` float32 [B,3,H,W] with B, H, W dynamic; outputs ``boxes``
    [B,N,4] and ``scores`` [B,N] float32 (docs/design.md#public-contracts). Raises ValueError."""
    graph = proto.graph
    inputs = [i for i in graph.input if i.name not in {t.name for t in graph.initializer}]
    if [i.name for i in inputs] != [INPUT_NAME]:
        raise ValueError(f"expected one input {INPUT_NAME!r}, got {[i.name for i in inputs]}")
    if [o.name for o in graph.output] != list(OUTPUT_NAMES):
        raise ValueError(f"expected outputs {list(OUTPUT_NAMES)}, got {[o.name for o in graph.output]}")
    for vi in [*inputs, *graph.output]:
        if vi.type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
            raise ValueError(f"{vi.name} must be float32, is {onnx.TensorProto.DataType.Name(vi.type.tensor_type.elem_type)}")
    dims = _dims(inputs[0])
    if len(dims) != 4 or dims[1] != 3 or not all(isinstance(d, str) for d in (dims[0], dims[2], dims[3])):
        raise ValueError(f"{INPUT_NAME} must be [batch,3,height,width] with dynamic batch, height and width, got {dims}")


def set_metadata(proto: onnx.ModelProto, meta: dict[str, Any]) -> None:
    """Replace ``metadata_props`` with ``meta`` (values that are not strings become JSON)."""
    del proto.metadata_props[:]
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key = key
        entry.value = value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def read_metadata(path_or_proto: str | os.PathLike[str] | onnx.ModelProto) -> dict[str, str]:
    if not isinstance(path_or_proto, onnx.ModelProto):
        return onnx_metadata(path_or_proto)  # the runtime's reader: no weights loaded
    return {p.key: p.value for p in path_or_proto.metadata_props}


def save_onnx(proto: onnx.ModelProto, path: str | os.PathLike[str]) -> Path:
    with atomic_path(path) as tmp:
        onnx.save(proto, str(tmp))
    return Path(path)


def _ort_outputs(proto: onnx.ModelProto, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
    boxes, scores = session.run(list(OUTPUT_NAMES), {INPUT_NAME: images})
    return boxes, scores


def _simplifiers() -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = []
    try:
        import onnxslim

        found.append((f"onnxslim {getattr(onnxslim, '__version__', '?')}", lambda m: onnxslim.slim(m)))
    except ImportError:
        pass
    try:
        import onnxsim

        def run_onnxsim(m: onnx.ModelProto) -> onnx.ModelProto:
            out, ok = onnxsim.simplify(m)
            if not ok:
                raise RuntimeError("onnxsim could not validate its result")
            return out

        found.append((f"onnxsim {getattr(onnxsim, '__version__', '?')}", run_onnxsim))
    except ImportError:
        pass
    return found


def simplify_if_equal(proto: onnx.ModelProto, probes: list[np.ndarray], tol: float = SIMPLIFY_TOL) -> tuple[onnx.ModelProto, str]:
    """Simplify with onnxslim (or onnxsim) and keep the result only if it passes the
    checker, keeps the I/O contract (dynamic batch/H/W) and gives the same outputs as
    ``proto`` on every probe batch (within ``tol``). Returns the model to use and a note."""
    from acfd_deploy.verify.compare import tensor_diff

    tools = _simplifiers()
    if not tools:
        return proto, "not simplified (neither onnxslim nor onnxsim is installed)"
    name, simplify = tools[0]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            simplified = simplify(onnx.ModelProto.FromString(proto.SerializeToString()))
        onnx.checker.check_model(simplified, full_check=True)
        check_io_contract(simplified)
    except Exception as exc:  # a simplifier failing is not the user's problem: keep the original
        return proto, f"not simplified ({name} failed: {one_line(exc, 100)})"
    worst = 0.0
    for images in probes:
        diff = tensor_diff(_ort_outputs(proto, images), _ort_outputs(simplified, images))
        worst = max(worst, diff.score_abs, diff.box_rel)
        if not diff.ok(tol, tol):
            return proto, f"not simplified ({name} changed the outputs by {worst:.1e})"
    before, after = len(proto.graph.node), len(simplified.graph.node)
    return simplified, f"simplified with {name}: {before} -> {after} nodes, outputs equal within {max(worst, 0.0):.1e}"

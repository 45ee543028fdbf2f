"""INT8 Q/DQ ONNX by static calibration (ONNX Runtime's quantizer): per-channel symmetric
int8 weights, 8-bit activations calibrated on real images preprocessed exactly as at
inference, the decode tail and the head's final prediction convolutions left in fp32.

Activations are stored as uint8 with a zero point (U8S8), the form ONNX Runtime's x86
kernels are fast with: measured on this project's CPU (AMD EPYC, AVX-512 VNNI) at
640x640 on the paper network, U8S8 ran 2.6x faster than fp32 while signed symmetric
int8 activations (S8S8) ran only 1.15x faster. TensorRT accepts only signed int8 with
zero point 0, so :func:`tensorrt_qdq` rewrites the same file's activation Q/DQ pairs to
symmetric int8 covering the same calibrated range (no recalibration) when an engine is
built: one calibration, one file, both runtimes.

OpenVINO gets a placement of its own (``placement="openvino"``): the head's prediction
convolutions also take int8 inputs and weights, and only their outputs stay fp32 (no
Q/DQ after them). OpenVINO runs them as int8 convolutions with fp32 output; with the
ONNX Runtime placement they run in fp32 and took 5-6% of OpenVINO int8's time on the
paper network (performance counters, 640x640), and OpenVINO int8 went from 245 to 224 ms
per image there (median of 7 interleaved rounds, batch 1, benchmarks/bench_cpu_backends.py)
with the same AP50 on the demo model (0.903). ONNX Runtime gains nothing from it (its time
stayed within noise), and its placement is unchanged."""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx

from acfd_deploy.errors import AcfdError
from acfd_deploy.export.fp16 import PrecisionError
from acfd_deploy.export.graph import conv_weight_dtypes, ensure_node_names, global_pools_to_gap, prediction_convs, tail_nodes
from acfd_deploy.pipeline.io import IMAGE_SUFFIXES

# Only convolutions (and the ReLUs ONNX Runtime fuses into them) are quantized: Q/DQ
# around Concat / MaxPool / Add / Mul measured slower on CPU than leaving them in fp32.
QUANTIZED_OPS = ["Conv", "Relu"]
PLACEMENTS = ("onnxruntime", "openvino")
# What a user of ``<stem>.int8.onnx`` must give ONNX Runtime, written into the file's
# metadata (ONNX Runtime applies no session options from a file: this is for people).
# Q/DQ -> QLinearConv fusion happens at ORT_ENABLE_EXTENDED; at ORT_ENABLE_BASIC the
# paper network ran no int8 kernel at all and was slower than the fp32 file (profiler,
# benchmarks/results/int8_ratio.md).
ORT_SESSION_ADVICE = (
    "graph_optimization_level ORT_ENABLE_ALL (ONNX Runtime's default; ORT_ENABLE_EXTENDED fuses Q/DQ too, "
    "ORT_ENABLE_BASIC or lower runs every convolution in fp32, slower than the fp32 file); "
    "intra_op_num_threads: the physical cores this process may use (default: all)"
)


def calibration_files(folder: str | os.PathLike[str]) -> list[Path]:
    """The image files in ``folder`` (sorted); a clear error if there is none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise AcfdError(f"--int8 needs calibration images, but {folder} is not a folder (pass --calib DIR)")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise AcfdError(f"--int8 needs calibration images, but {folder} holds none ({', '.join(IMAGE_SUFFIXES)})")
    return files


def load_calibration(folder: str | os.PathLike[str], size: tuple[int, int], min_side: int, limit: int | None = None) -> list[np.ndarray]:
    """Every calibration image as the network receives it at inference: loaded by the
    pipeline's own loader (EXIF rotation, 16-bit scaled to 8, transparency over white)
    and resized by its own preprocessing to ``size``. Calibrating on anything else
    calibrates a different input distribution. Reading all of them up front means a bad
    file is reported before any artifact is written."""
    from acfd_deploy.pipeline.io import ImageLoadError, load_image
    from acfd_deploy.pipeline.preprocess import preprocess_batch

    files = calibration_files(folder)
    if limit is not None:
        files = files[:limit]
    batches = []
    for f in files:
        try:
            image = load_image(f)
        except ImageLoadError as exc:
            raise AcfdError(f"calibration image {exc}") from None
        batch, _ = preprocess_batch([image], size, keep_ratio=False, min_size=min_side)
        batches.append(batch)
    return batches


class _Reader:
    """onnxruntime.quantization.CalibrationDataReader over preprocessed images."""

    def __init__(self, images: list[np.ndarray], input_name: str) -> None:
        self.images, self.input_name = images, input_name
        self._it: Iterator[np.ndarray] = iter(images)

    def get_next(self) -> dict[str, np.ndarray] | None:
        image = next(self._it, None)
        return None if image is None else {self.input_name: image}

    def rewind(self) -> None:
        self._it = iter(self.images)


def quantize_int8(
    proto: onnx.ModelProto, images: list[np.ndarray], input_name: str = "images", placement: str = "onnxruntime"
) -> tuple[onnx.ModelProto, dict[str, object]]:
    """Static per-channel INT8 (QDQ) of ``proto``; returns the model and a short report.

    ``placement``: ``onnxruntime`` (the default: what ``<stem>.int8.onnx`` holds) keeps the
    head's prediction convolutions in fp32; ``openvino`` quantizes their inputs and weights
    too and keeps only their outputs in fp32 (see the module docstring)."""
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if not images:
        raise AcfdError("INT8 calibration needs at least one image")
    if placement not in PLACEMENTS:
        raise AcfdError(f"unknown int8 placement {placement!r}; choose from {', '.join(PLACEMENTS)}")
    model = onnx.ModelProto.FromString(proto.SerializeToString())
    ensure_node_names(model.graph)
    del model.metadata_props[:]
    # ONNX Runtime runs the eSE squeeze (ReduceMean) in fp32 on a dequantized NHWC map;
    # as GlobalAveragePool it fuses into QLinearGlobalAveragePool (see graph.py)
    pools = global_pools_to_gap(model) if placement == "onnxruntime" else 0
    predictions = prediction_convs(model.graph)
    keep_fp32 = tail_nodes(model.graph) + (predictions if placement == "onnxruntime" else [])

    class Reader(_Reader, CalibrationDataReader):
        pass

    quiet = logging.getLogger()
    level = quiet.level
    with tempfile.TemporaryDirectory(prefix="acfd-int8-") as tmpdir, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quiet.setLevel(logging.ERROR)
        try:
            src, pre, dst = (Path(tmpdir) / n for n in ("fp32.onnx", "pre.onnx", "int8.onnx"))
            onnx.save(model, str(src))
            try:  # graph optimization and ONNX shape inference; symbolic shape inference
                # cannot follow the anchor arithmetic on dynamic sizes and is not needed
                quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
            except Exception:
                pre = src
            quantize_static(
                str(pre),
                str(dst),
                Reader(images, input_name),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                op_types_to_quantize=QUANTIZED_OPS,
                nodes_to_exclude=keep_fp32,
                calibrate_method=CalibrationMethod.MinMax,
                extra_options={"ActivationSymmetric": False, "WeightSymmetric": True},
            )
            quantized = onnx.load(str(dst))
        finally:
            quiet.setLevel(level)
    if placement == "openvino":
        stripped = strip_output_qdq(quantized, predictions)
        if stripped != len(predictions):
            raise PrecisionError(f"expected a Q/DQ pair after each of the {len(predictions)} prediction convolutions, found {stripped}")
    onnx.checker.check_model(quantized, full_check=True)
    report = verify_int8(quantized)
    report["calibration_images"] = len(images)
    report["kept_fp32_nodes"] = len(keep_fp32)
    report["placement"] = placement
    report["global_pools"] = pools
    return quantized, report


def strip_output_qdq(model: onnx.ModelProto, node_names: list[str]) -> int:
    """Remove the QuantizeLinear -> DequantizeLinear pair after each named node's first
    output, in place (its consumers read the float output again); returns how many."""
    graph = model.graph
    names = set(node_names)
    outputs = {n.output[0] for n in graph.node if n.name in names}
    rename: dict[str, str] = {}
    drop: list[onnx.NodeProto] = []
    for q in [n for n in graph.node if n.op_type == "QuantizeLinear" and n.input[0] in outputs]:
        dqs = [n for n in graph.node if n.op_type == "DequantizeLinear" and n.input[0] == q.output[0]]
        users = [n for n in graph.node if q.output[0] in n.input and n not in dqs]
        if not dqs or users or any(o.name == q.output[0] for o in graph.output):
            continue  # the quantized tensor is used for more than dequantizing it: keep
        rename.update({dq.output[0]: q.input[0] for dq in dqs})
        drop += [q, *dqs]
    if any(o.name in rename for o in graph.output):
        raise ValueError("a graph output is a dequantized prediction; it cannot be rewired")
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in rename:
                node.input[i] = rename[name]
    for node in drop:
        graph.node.remove(node)
    used = {i for n in graph.node for i in n.input}
    keep = [t for t in graph.initializer if t.name in used or t.name in {i.name for i in graph.input}]
    del graph.initializer[:]
    graph.initializer.extend(keep)
    return sum(1 for n in drop if n.op_type == "QuantizeLinear")


def verify_int8(proto: onnx.ModelProto) -> dict[str, object]:
    """Fail loudly unless most convolutions take int8 weights through QuantizeLinear /
    DequantizeLinear pairs (an ``--int8`` that silently stays fp32 is worthless)."""
    dtypes = conv_weight_dtypes(proto)
    total = sum(dtypes.values())
    int8 = dtypes.get("int8", 0)
    qdq = sum(1 for n in proto.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear"))
    if total == 0 or int8 < 0.8 * total or qdq == 0:
        raise PrecisionError(f"the int8 ONNX has int8 weights in only {int8} of {total} convolutions ({dict(dtypes)})")
    return {"int8_convs": int8, "convs": total, "qdq_nodes": qdq}


def tensorrt_qdq(proto: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of a U8S8 Q/DQ model in the form TensorRT accepts: every uint8 activation
    Q/DQ pair (scale s, zero point z) becomes signed int8 with zero point 0 and scale
    ``s * max(z, 255 - z) / 127``, which covers the same calibrated range (where z = 0,
    the uint8 range clipped negatives and stood for a fused ReLU, so a ReLU is put back
    before the QuantizeLinear); int32 bias DequantizeLinear nodes become the float biases
    they compute. Weights are already symmetric int8."""
    from onnx import numpy_helper

    model = onnx.ModelProto.FromString(proto.SerializeToString())
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    made: dict[tuple[str, str], tuple[str, str]] = {}
    new_inits: list[onnx.TensorProto] = []
    drop_nodes: list[onnx.NodeProto] = []
    relus: list[tuple[onnx.NodeProto, onnx.NodeProto]] = []
    for node in graph.node:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear") or len(node.input) < 3:
            continue
        scale_name, zp_name = node.input[1], node.input[2]
        zp_t = inits.get(zp_name)
        if zp_t is None:
            continue
        zp = numpy_helper.to_array(zp_t)
        if node.op_type == "DequantizeLinear" and zp.dtype == np.int32 and node.input[0] in inits:
            q = numpy_helper.to_array(inits[node.input[0]]).astype(np.float64)
            scale = numpy_helper.to_array(inits[scale_name]).astype(np.float64)
            value = ((q - zp.astype(np.float64)) * scale).astype(np.float32)
            new_inits.append(numpy_helper.from_array(value, node.output[0]))
            drop_nodes.append(node)
            continue
        if zp.dtype != np.uint8:
            continue
        if node.op_type == "QuantizeLinear" and not zp.any():
            # uint8 with zero point 0 clips negatives: the quantizer relies on that to drop
            # the ReLU it fused. Symmetric int8 keeps negatives, so the ReLU comes back.
            clipped = f"{node.input[0]}_relu_trt"
            relus.append((node, onnx.helper.make_node("Relu", [node.input[0]], [clipped], name=f"{node.name}_relu_trt")))
            node.input[0] = clipped
        key = (scale_name, zp_name)
        if key not in made:
            scale = numpy_helper.to_array(inits[scale_name]).astype(np.float64)
            z = zp.astype(np.float64)
            sym = (scale * np.maximum(z, 255.0 - z) / 127.0).astype(np.float32)
            names = (f"{scale_name}_trt_s8", f"{zp_name}_trt_s8")
            new_inits.append(numpy_helper.from_array(sym.reshape(scale.shape), names[0]))
            new_inits.append(numpy_helper.from_array(np.zeros(zp.shape, np.int8), names[1]))
            made[key] = names
        node.input[1], node.input[2] = made[key]
    for node in drop_nodes:
        graph.node.remove(node)
    if relus:
        before = {id(q): relu for q, relu in relus}
        ordered = []
        for node in graph.node:
            if id(node) in before:
                ordered.append(before[id(node)])
            ordered.append(node)
        del graph.node[:]
        graph.node.extend(ordered)
    graph.initializer.extend(new_inits)
    used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
    keep = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)
    onnx.checker.check_model(model, full_check=True)
    return model

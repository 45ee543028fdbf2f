"""The export as a sequence of steps, one per artifact: each builds its files into the
staging folder and returns :class:`Artifact` records; the exporter then verifies each
one through the registry's runner for the file that was written, and records it."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from acfd_deploy.configs import ModelConfig
from acfd_deploy.export.options import ExportOptions
from acfd_deploy.export.source import WeightsInfo
from acfd_deploy.verify.rules import Verdict


@dataclass
class Artifact:
    """One verified (or to-be-verified) file of the export."""

    name: str  # for the table: "ONNX fp32", "TensorRT fp16", ...
    kind: str  # torch | onnx | tensorrt | openvino | pt2 (the file format)
    backend: str  # the registry backend that runs it
    precision: str
    files: list[Path]  # the artifact first, then files that belong to it (sidecar, weights)
    verify_device: str = "cpu"
    runner_options: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    verdict: Verdict | None = None

    @property
    def path(self) -> Path:
        return self.files[0]

    def size(self) -> int:
        return sum(f.stat().st_size for f in self.files if f.exists())


@dataclass
class ExportContext:
    """What the steps share: the options, the staging folder and what earlier steps made."""

    opts: ExportOptions
    stage: Path
    stem: str
    model: nn.Module
    config: ModelConfig
    weights: WeightsInfo
    parity_inputs: list[np.ndarray]
    calib_images: list[np.ndarray]
    profile: dict[str, list[int]]
    build_device: str  # where TensorRT builds and verifies (cuda:N)
    log: Callable[[str], None]
    notes: dict[str, Any] = field(default_factory=dict)
    folded: nn.Module | None = None
    fp32_proto: Any = None  # onnx.ModelProto of the fp32 graph, the source of the others
    onnx_files: dict[str, Path] = field(default_factory=dict)

    def file(self, suffix: str) -> Path:
        return self.stage / f"{self.stem}{suffix}"

    def metadata(self, precision: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """What every ONNX (and OpenVINO IR) file carries: enough to run and trace it."""
        from acfd_deploy import __version__
        from acfd_deploy.model.anchors import min_input_size

        contract = {
            "name": "images",
            "shape": ["batch", 3, "height", "width"],
            "dtype": "float32",
            "layout": "NCHW RGB, values 0..255 (normalization is inside the graph)",
            "min_side": min_input_size(self.config),
            "export_size": list(self.opts.imgsz),
            "outputs": {"boxes": "[batch, anchors, 4] xyxy input pixels", "scores": "[batch, anchors] 0..1"},
        }
        return {
            "producer": f"acfd-deploy {__version__}",
            "tool_version": __version__,
            "config": json.dumps(self.config.to_dict(), sort_keys=True),
            "config_name": self.config.name,
            "input": json.dumps(contract, sort_keys=True),
            "weights": self.weights.source,
            "weights_sha256": self.weights.sha256 or "none (random weights)",
            "precision": precision,
            "opset": str(self.opts.opset),
            **(extra or {}),
        }


@dataclass(frozen=True)
class Step:
    key: str  # in export.json's step_seconds
    title: str  # the progress line
    build: Callable[[ExportContext], list[Artifact]]


def build_fold(ctx: ExportContext) -> list[Artifact]:
    from acfd_deploy import reparameterize
    from acfd_deploy.checkpoint import save_checkpoint
    from acfd_deploy.reparam import is_reparameterized

    ctx.folded = ctx.model if is_reparameterized(ctx.model) else reparameterize(ctx.model)
    path = save_checkpoint(ctx.folded, ctx.file(".deploy.pt"))
    return [Artifact("PyTorch folded", "torch", "torch", "fp32", [path])]


def build_onnx_fp32(ctx: ExportContext) -> list[Artifact]:
    from acfd_deploy.export.onnx_export import export_onnx, save_onnx, set_metadata, simplify_if_equal

    assert ctx.folded is not None
    proto = export_onnx(ctx.folded, opset=ctx.opts.opset)
    if ctx.opts.simplify:
        probes = [ctx.parity_inputs[-1][:1], ctx.parity_inputs[0][:1]]
        proto, note = simplify_if_equal(proto, probes)
    else:
        note = "not simplified (--no-simplify)"
    ctx.notes["simplify"] = note
    ctx.log(f"    {note}")
    set_metadata(proto, ctx.metadata("fp32", {"simplify": note}))
    ctx.fp32_proto = proto
    ctx.onnx_files["fp32"] = save_onnx(proto, ctx.file(".onnx"))
    return [Artifact("ONNX fp32", "onnx", "onnxruntime", "fp32", [ctx.onnx_files["fp32"]])]


def build_onnx_fp16(ctx: ExportContext) -> list[Artifact]:
    from acfd_deploy.export.fp16 import convert_fp16, verify_fp16
    from acfd_deploy.export.onnx_export import save_onnx, set_metadata

    half = convert_fp16(ctx.fp32_proto)
    ctx.notes["fp16"] = {"conv_weight_dtypes": verify_fp16(half)}
    set_metadata(half, ctx.metadata("fp16", {"kept_fp32": "inputs, outputs, anchors, box decoding, sigmoid"}))
    ctx.onnx_files["fp16"] = save_onnx(half, ctx.file(".fp16.onnx"))
    return [Artifact("ONNX fp16", "onnx", "onnxruntime", "fp16", [ctx.onnx_files["fp16"]])]


def build_onnx_int8(ctx: ExportContext) -> list[Artifact]:
    from acfd_deploy.export.int8 import ORT_SESSION_ADVICE, quantize_int8
    from acfd_deploy.export.onnx_export import save_onnx, set_metadata

    q, report = quantize_int8(ctx.fp32_proto, ctx.calib_images)
    calib = ctx.notes.get("calibration_folder", "?")
    ctx.notes["int8"] = {**report, "calibration_folder": calib}
    h, w = ctx.opts.imgsz
    extra = {
        "calibration": f"static MinMax, {len(ctx.calib_images)} images from {calib} at {h}x{w}",
        "kept_fp32": "inputs, outputs, head prediction convs, anchors, box decoding, sigmoid",
        "onnxruntime_session": ORT_SESSION_ADVICE,
    }
    set_metadata(q, ctx.metadata("int8", extra))
    ctx.onnx_files["int8"] = save_onnx(q, ctx.file(".int8.onnx"))
    return [Artifact("ONNX int8", "onnx", "onnxruntime", "int8", [ctx.onnx_files["int8"]])]


def build_tensorrt(precision: str) -> Callable[[ExportContext], list[Artifact]]:
    def build(ctx: ExportContext) -> list[Artifact]:
        from acfd_deploy.export.tensorrt import build_engine
        from acfd_deploy.runtime.device import parse_device
        from acfd_deploy.runtime.plan import sidecar_path

        plan = ctx.file(f".{precision}.plan")
        index = parse_device(ctx.build_device).index
        info = build_engine(ctx.onnx_files[precision], plan, precision, ctx.profile, ctx.opts.workspace, device_index=index)
        return [
            Artifact(f"TensorRT {precision}", "tensorrt", "tensorrt", precision, [plan, sidecar_path(plan)], ctx.build_device, details=info)
        ]

    return build


def build_openvino(ctx: ExportContext) -> list[Artifact]:
    """OpenVINO IR of the fp32 ONNX, run in f32 and, where the CPU has native bf16, in bf16
    (the same files, another inference precision: OpenVINO's bf16 is a runtime setting)."""
    from acfd_deploy.export.openvino import write_ir
    from acfd_deploy.runtime.openvino_model import cpu_supports_bf16

    files = list(write_ir(ctx.onnx_files["fp32"], ctx.file(".xml")))
    artifacts = [Artifact("OpenVINO fp32", "openvino", "openvino", "fp32", files)]
    native, why = cpu_supports_bf16()
    ctx.notes["openvino_bf16"] = why
    if native:
        artifacts.append(Artifact("OpenVINO bf16", "openvino", "openvino", "bf16", files, runner_options={"precision": "bf16"}))
    else:
        ctx.log(f"    OpenVINO bf16: skipped ({why})")
    return artifacts


def build_openvino_int8(ctx: ExportContext) -> list[Artifact]:
    """OpenVINO IR of an int8 Q/DQ graph quantized for OpenVINO: the same calibration, with
    the head's prediction convolutions quantized too (OpenVINO runs them in int8, where
    ONNX Runtime's placement keeps them fp32; see export/int8.py). The intermediate ONNX
    is not kept: ``<stem>.int8.onnx`` stays ONNX Runtime's."""
    import tempfile

    from acfd_deploy.export.int8 import quantize_int8
    from acfd_deploy.export.onnx_export import save_onnx, set_metadata
    from acfd_deploy.export.openvino import write_ir

    q, report = quantize_int8(ctx.fp32_proto, ctx.calib_images, placement="openvino")
    ctx.notes["openvino_int8"] = report
    extra = {"calibration": f"static MinMax, {len(ctx.calib_images)} images", "placement": "openvino (prediction convolutions in int8)"}
    set_metadata(q, ctx.metadata("int8", extra))
    with tempfile.TemporaryDirectory(prefix="acfd-ov-int8-") as tmp:
        onnx_path = save_onnx(q, Path(tmp) / f"{ctx.stem}.int8.openvino.onnx")
        files = list(write_ir(onnx_path, ctx.file(".int8.xml")))
    return [Artifact("OpenVINO int8", "openvino", "openvino", "int8", files)]


def build_pt2(ctx: ExportContext) -> list[Artifact]:
    """AOTInductor packages of the folded graph for the export device: fp32, and fp16 on
    CUDA with --fp16 (export/pt2.py says how the input ranges were found)."""
    import torch

    from acfd_deploy.export.pt2 import compile_package, cuda_info, export_program, trace_size
    from acfd_deploy.runtime.device import resolve_device

    assert ctx.folded is not None
    device = resolve_device(ctx.opts.device)
    precisions = ["fp32"] + (["fp16"] if ctx.opts.fp16 and device.is_cuda else [])
    if ctx.opts.fp16 and not device.is_cuda:
        ctx.notes["pt2_fp16"] = "skipped: fp16 in PyTorch needs a CUDA device (--device cuda)"
        ctx.log(f"    AOTInductor fp16: {ctx.notes['pt2_fp16']}")
    trace_hw = trace_size(ctx.config, [tuple(b.shape[-2:]) for b in ctx.parity_inputs])
    artifacts = []
    for precision in precisions:
        t0 = time.perf_counter()
        program, ranges = export_program(ctx.folded, ctx.config, torch.device(device.torch()), precision, trace_hw, max(64, ctx.opts.batch))
        export_seconds = time.perf_counter() - t0
        base = ctx.metadata(precision)
        meta = {
            **{k: base[k] for k in ("producer", "tool_version", "config_name", "weights", "weights_sha256", "precision")},
            "config": ctx.config.to_dict(),
            "input": {**json.loads(base["input"]), "min_side": ranges["height"][0], "ranges": ranges},
            "device": device.kind,
            **cuda_info(torch.device(device.torch())),
            "torch_version": torch.__version__,
            "kept_fp32": "inputs, outputs, anchors, box decoding, sigmoid" if precision == "fp16" else "",
            "trace_shape": [2, 3, *trace_hw],
        }
        path = ctx.file(".pt2" if precision == "fp32" else f".{precision}.pt2")
        compile_seconds, configs = compile_package(program, path, meta)
        ctx.log(f"    AOTInductor {precision}: torch.export {export_seconds:.1f} s, compile {compile_seconds:.1f} s")
        details = {
            "export_seconds": round(export_seconds, 2),
            "compile_seconds": round(compile_seconds, 2),
            "device": device.kind,
            "ranges": ranges,
            "trace_shape": meta["trace_shape"],
            "inductor_configs": configs,
        }
        artifacts.append(Artifact(f"AOTInductor {precision}", "pt2", "pt2", precision, [path], str(device), details=details))
    return artifacts


def plan_steps(opts: ExportOptions, build_trt: bool) -> list[Step]:
    """The steps this export runs, in order (each artifact is verified right after it is built)."""
    steps = [
        Step("fold", "folding the graph (ACB + BatchNorm)", build_fold),
        Step("onnx_fp32", f"exporting ONNX fp32 (opset {opts.opset}, dynamic batch/height/width)", build_onnx_fp32),
    ]
    if opts.fp16:
        steps.append(Step("onnx_fp16", "converting ONNX to fp16 (fp32 I/O, decode tail in fp32)", build_onnx_fp16))
    if opts.int8:
        steps.append(Step("onnx_int8", "quantizing ONNX to int8 (Q/DQ, per-channel, static calibration)", build_onnx_int8))
    if build_trt:
        precisions = ["fp32"] + (["fp16"] if opts.fp16 else []) + (["int8"] if opts.int8 else [])
        steps += [Step(f"tensorrt_{p}", f"building TensorRT {p} engine", build_tensorrt(p)) for p in precisions]
    if opts.pt2:
        steps.append(Step("pt2", "torch.export + AOTInductor compile (.pt2, dynamic batch/height/width)", build_pt2))
    if opts.openvino:
        steps.append(Step("openvino", "writing OpenVINO IR (fp32 weights, metadata in rt_info)", build_openvino))
        if opts.int8:
            steps.append(Step("openvino_int8", "quantizing for OpenVINO and writing its int8 IR", build_openvino_int8))
    from acfd_deploy.export.e2e_steps import end2end_steps

    return steps + end2end_steps(opts)

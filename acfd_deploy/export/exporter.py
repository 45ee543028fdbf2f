"""The export, step by step: weights -> folded graph -> ONNX fp32 / fp16 / int8 ->
TensorRT plans -> parity of every artifact against the PyTorch training graph -> manifest.

Everything the user got wrong is found before the first artifact is written (weights,
config, sizes, output folder, calibration images, engine choice), and every file is written
under a hidden temporary name and renamed when complete. If the export stops midway (an
error or Ctrl-C), the artifacts this run already wrote are removed as well, so the folder
never holds an unverified set; a parity failure keeps them (exit 1) for inspection.
"""

from __future__ import annotations

import datetime as _dt
import json
import platform
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from acfd_deploy.checkpoint import DEMO_WEIGHTS, demo_weights
from acfd_deploy.configs import ModelConfig
from acfd_deploy.errors import AcfdError
from acfd_deploy.export.accuracy import DEFAULT_VAL_IMAGES, SYNTHETIC_VAL_SEED, ValidationSet
from acfd_deploy.fileio import atomic_path, sha256_file

ENGINES = ("auto", "onnx", "tensorrt")
DEFAULT_IMGSZ = (640, 640)
DEFAULT_WEIGHTS = DEMO_WEIGHTS
# parity images: realistic synthetic cartoon scenes at the export size, plus a batch at
# the smallest of the paper's test scales, which is neither square nor a multiple of 128
PARITY_IMAGES = 4
PARITY_EXTRA_SIZE = (480, 645)
# TensorRT fp32 picks its own convolution algorithms (TF32 is off): held to tensor level,
# ten times looser than ONNX Runtime until measured on a GPU
TRT_FP32_TOL = 1e-3


@dataclass
class ExportOptions:
    weights: Path | None = None
    config: str | None = None
    random_init: bool = False
    fp16: bool = False
    int8: bool = False
    calib: Path = Path("calib")
    imgsz: tuple[int, int] = DEFAULT_IMGSZ
    batch: int = 1
    opset: int = 17
    simplify: bool = True
    engine: str = "auto"
    workspace: float = 4.0
    out: Path = Path("exports")
    seed: int = 0
    parity_images: int = PARITY_IMAGES
    calib_limit: int | None = None
    # int8 is judged by AP50 on a labelled set: the user's (iCartoonFace format) or synthetic
    val_data: Path | None = None
    val_images: Path | None = None
    val_count: int = DEFAULT_VAL_IMAGES


@dataclass
class ArtifactRecord:
    name: str  # for the table: "ONNX fp32", "TensorRT fp16", ...
    kind: str  # torch | onnx | tensorrt | json
    path: Path | None
    precision: str
    parity: dict[str, Any] = field(default_factory=dict)

    def size(self) -> int:
        return self.path.stat().st_size if self.path is not None and self.path.exists() else 0


@dataclass
class ExportResult:
    out: Path
    stem: str
    artifacts: list[ArtifactRecord]
    manifest: dict[str, Any]
    passed: bool
    tensorrt_note: str


def _log_default(msg: str) -> None:
    print(msg, flush=True)


class _Steps:
    """Step lines with timings, and the record of each step for the manifest."""

    def __init__(self, log: Callable[[str], None]) -> None:
        self.log = log
        self.times: dict[str, float] = {}
        self.start = time.perf_counter()

    @contextmanager
    def step(self, name: str, text: str) -> Iterator[None]:
        t0 = time.perf_counter()
        self.log(f"  {text} ...")
        yield
        dt = time.perf_counter() - t0
        self.times[name] = round(dt, 3)
        self.log(f"  {text}: done in {dt:.1f} s")


# ---------------------------------------------------------------- validation


def _check_out_dir(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise AcfdError(f"--out {out} exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".acfd-write-test-", suffix=".partial"):
            pass
    except OSError as exc:
        raise AcfdError(f"--out {out} cannot be written ({exc.strerror or exc})") from None


def resolve_model(opts: ExportOptions) -> tuple[nn.Module, dict[str, Any]]:
    """The model to export (training graph, or a folded graph from a deploy checkpoint)
    and a description of where its weights came from."""
    import acfd_deploy
    from acfd_deploy.calibrate import well_conditioned
    from acfd_deploy.reparam import is_reparameterized

    if opts.random_init:
        if opts.weights is not None:
            raise AcfdError("--random-init and --weights exclude each other")
        if not opts.config:
            raise AcfdError("--random-init needs --config NAME")
        torch.manual_seed(opts.seed)
        model = well_conditioned(acfd_deploy.build_model(opts.config), seed=opts.seed)
        return model, {
            "source": "random",
            "note": f"random weights with calibrated BN statistics (well_conditioned, seed {opts.seed}); not a trained detector",
            "sha256": None,
        }
    weights = opts.weights
    note = ""
    if weights is None:
        weights = demo_weights()
        if weights is None:
            raise AcfdError(
                f"no --weights given and no {DEFAULT_WEIGHTS}; pass --weights PATH, or --config NAME --random-init for a demo export"
            )
        note = "the bundled demo model, acfd-tiny trained on synthetic cartoon faces, not on iCartoonFace (models/acfd-tiny-demo.md)"
    model = acfd_deploy.load_model(weights, config=opts.config)
    if is_reparameterized(model):
        note = "folded (deploy) checkpoint: no training graph to compare with"
    return model, {
        "source": str(weights),
        "note": note,
        "sha256": sha256_file(weights),
    }


def validate(opts: ExportOptions) -> None:
    from acfd_deploy.export.tensorrt import tensorrt_status

    if opts.engine not in ENGINES:
        raise AcfdError(f"unknown --engine {opts.engine!r}; choose from {', '.join(ENGINES)}")
    if opts.batch < 1:
        raise AcfdError(f"--batch must be at least 1, got {opts.batch}")
    if opts.workspace <= 0:
        raise AcfdError(f"--workspace must be positive (GiB), got {opts.workspace}")
    if (opts.val_data is None) != (opts.val_images is None):
        raise AcfdError("--val-data and --val-images go together (the CSV and the folder of its images)")
    if opts.val_data is not None and not opts.int8:
        raise AcfdError("--val-data and --val-images judge the --int8 artifact by AP; add --int8 or leave them out")
    if opts.val_count < 1:
        raise AcfdError(f"--val-count must be at least 1, got {opts.val_count}")
    if not 13 <= opts.opset <= 23:
        raise AcfdError(f"--opset {opts.opset} is not supported (13..23; default 17)")
    if opts.engine == "tensorrt":
        ok, why = tensorrt_status()
        if not ok:
            raise AcfdError(f"--engine tensorrt needs TensorRT and a CUDA GPU: {why}")


# ---------------------------------------------------------------- images


def parity_batches(imgsz: tuple[int, int], count: int, batch: int, seed: int) -> list[np.ndarray]:
    """Realistic images for parity: synthetic cartoon scenes (acfd_deploy.data). Batches of
    up to ``batch`` at the export size, plus one batch of two (at most ``batch``) at 480x645."""
    from acfd_deploy.data.synth import synthetic_batch

    def make(n: int, h: int, w: int, offset: int) -> np.ndarray:
        return synthetic_batch(n, h, w, seed + 7919, first=offset)

    batches = []
    step = max(1, min(batch, count))
    for start in range(0, count, step):
        batches.append(make(min(step, count - start), *imgsz, start))
    if tuple(imgsz) != PARITY_EXTRA_SIZE:  # within the TensorRT profile's batch range
        batches.append(make(min(2, batch), *PARITY_EXTRA_SIZE, 1000))
    return batches


# ---------------------------------------------------------------- parity


def _run(runner: Any, batches: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    return [runner.infer(b) for b in batches]


def compare(
    precision: str,
    refs: list[tuple[np.ndarray, np.ndarray]],
    outs: list[tuple[np.ndarray, np.ndarray]],
    level: str,
    tol: float | None = None,
) -> dict[str, Any]:
    """Parity figures of one artifact: raw error always, detection match always, pass by
    ``level`` (``tensor``: within tolerance; ``detection``: the precision's match rate)."""
    from acfd_deploy import parity

    diff = parity.merge_diffs([parity.tensor_diff(r, o) for r, o in zip(refs, outs)])
    match = parity.merge_matches([parity.detection_match(r, o) for r, o in zip(refs, outs)])
    if level == "tensor":
        t = tol if tol is not None else parity.SCORE_ATOL
        passed = diff.ok(t, t if tol is not None else parity.BOX_RTOL)
        need: dict[str, Any] = {"score_abs": t, "box_rel": t if tol is not None else parity.BOX_RTOL}
    else:
        need = {"match_rate": parity.min_match_rate(precision)}
        passed = match.rate >= need["match_rate"]
    return {
        "level": level,
        "score_abs": diff.score_abs,
        "box_rel": diff.box_rel,
        "match": match.to_dict(),
        "required": need,
        "passed": bool(passed),
    }


def _validation_set(opts: ExportOptions) -> ValidationSet:
    from acfd_deploy.export.accuracy import check_enough_faces, read_validation_set, synthetic_validation_set

    if opts.val_data is not None and opts.val_images is not None:
        val = read_validation_set(opts.val_data, opts.val_images, opts.val_count)
        check_enough_faces(val, "label more images, or raise --val-count if it cut the set short")
    else:
        val = synthetic_validation_set(opts.val_count, opts.imgsz, SYNTHETIC_VAL_SEED + opts.seed)
        check_enough_faces(val, "raise --val-count")
    return val


class _ApJudge:
    """Replaces an int8 artifact's detection-level verdict by the AP rule
    (acfd_deploy.export.accuracy); the reference AP is measured once, on first use."""

    def __init__(self, val: ValidationSet, reference: Any, imgsz: tuple[int, int], batch: int) -> None:
        self.val, self.reference, self.imgsz, self.batch = val, reference, imgsz, batch
        self.reference_ap: float | None = None

    def __call__(self, parity: dict[str, Any], runner: Any) -> dict[str, Any]:
        from acfd_deploy.export.accuracy import judge_int8

        verdict = judge_int8(self.reference, runner, self.val, self.imgsz, parity["match"]["rate"], self.batch, self.reference_ap)
        self.reference_ap = verdict["reference_ap"]
        return {**parity, **verdict, "level": "accuracy" if verdict["rule"] == "ap" else parity["level"]}


# ---------------------------------------------------------------- the export


def _versions() -> dict[str, Any]:
    from acfd_deploy import __version__
    from acfd_deploy.envinfo import package_version

    return {
        "acfd_deploy": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnx": package_version("onnx"),
        "onnxruntime": package_version("onnxruntime") or package_version("onnxruntime-gpu"),
        "onnxslim": package_version("onnxslim"),
        "onnxsim": package_version("onnxsim"),
        "tensorrt": package_version("tensorrt"),
        "polygraphy": package_version("polygraphy"),
    }


def _stem(opts: ExportOptions, config_name: str) -> str:
    if opts.weights is not None:
        return Path(opts.weights).name.split(".")[0] or config_name
    if not opts.random_init and demo_weights() is not None:
        return DEFAULT_WEIGHTS.name.split(".")[0]
    return config_name


def run_export(opts: ExportOptions, log: Callable[[str], None] = _log_default) -> ExportResult:
    """Do the whole export; raise AcfdError on bad input (nothing written)."""
    from acfd_deploy.export.tensorrt import engine_profile, tensorrt_status
    from acfd_deploy.model.anchors import min_input_size

    validate(opts)
    steps = _Steps(log)
    out = Path(opts.out)
    with steps.step("load", "loading weights"):
        model, weights_info = resolve_model(opts)
    config = cast(ModelConfig, model.config)
    min_side = min_input_size(config)
    h, w = opts.imgsz
    if min(h, w) < min_side:
        raise AcfdError(f"--imgsz {h} {w} is below the minimum side {min_side} of {config.name} (six pyramid levels)")
    calib_images: list[np.ndarray] = []
    if opts.int8:
        from acfd_deploy.export.int8 import load_calibration

        with steps.step("calib_load", f"reading calibration images from {opts.calib}"):
            calib_images = load_calibration(opts.calib, opts.imgsz, opts.calib_limit)
        with steps.step("val_load", "preparing the labelled validation set for the int8 AP check"):
            val_set = _validation_set(opts)
        log(f"    {val_set.source}, {val_set.num_faces} faces")
        for note in val_set.notes:
            log(f"    warning: {note}")
    else:
        val_set = None
    _check_out_dir(out)
    if opts.engine == "onnx":
        build_trt, trt_note = False, "TensorRT: skipped (--engine onnx)"
    else:
        ok, why = tensorrt_status()
        build_trt = ok
        trt_note = f"TensorRT {why}: building engines" if ok else f"TensorRT: skipped ({why})"
    profile = engine_profile(opts.imgsz, opts.batch, min_side)

    stem = _stem(opts, config.name)
    written: list[Path] = []
    manifest_path = out / "export.json"
    manifest_path.unlink(missing_ok=True)  # a stale manifest must not describe this run's files
    try:
        result = _export(opts, steps, model, weights_info, config, stem, out, written, build_trt, trt_note, profile, calib_images, val_set)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    return result


def _export(
    opts: ExportOptions,
    steps: _Steps,
    model: nn.Module,
    weights_info: dict[str, Any],
    config: Any,
    stem: str,
    out: Path,
    written: list[Path],
    build_trt: bool,
    trt_note: str,
    profile: dict[str, list[int]],
    calib_images: list[np.ndarray],
    val_set: ValidationSet | None = None,
) -> ExportResult:
    from acfd_deploy import __version__, reparameterize
    from acfd_deploy.checkpoint import save_checkpoint
    from acfd_deploy.export.onnx_export import export_onnx, save_onnx, set_metadata, simplify_if_equal
    from acfd_deploy.model.anchors import min_input_size
    from acfd_deploy.reparam import is_reparameterized
    from acfd_deploy.runtime.onnx_runner import OnnxRuntimeRunner
    from acfd_deploy.runtime.torch_runner import TorchRunner

    log = steps.log
    started = _dt.datetime.now(_dt.timezone.utc)
    records: list[ArtifactRecord] = []
    notes: dict[str, Any] = {"tensorrt": trt_note}
    batches = parity_batches(opts.imgsz, opts.parity_images, opts.batch, opts.seed)
    already_folded = is_reparameterized(model)

    with steps.step("reference", "running the PyTorch training graph (reference)"):
        reference = TorchRunner(model.eval(), name="torch training graph")
        refs = _run(reference, batches)

    with steps.step("fold", "folding the graph and checking the fold"):
        folded = model if already_folded else reparameterize(model)
        fold_parity = compare("fp32", refs, _run(TorchRunner(folded), batches), "tensor")
        deploy_path = out / f"{stem}.deploy.pt"
        written.append(deploy_path)
        save_checkpoint(folded, deploy_path)
    records.append(ArtifactRecord("PyTorch folded", "torch", deploy_path, "fp32", fold_parity))

    input_contract = {
        "name": "images",
        "shape": ["batch", 3, "height", "width"],
        "dtype": "float32",
        "layout": "NCHW RGB, values 0..255 (normalization is inside the graph)",
        "min_side": min_input_size(config),
        "export_size": list(opts.imgsz),
        "outputs": {"boxes": "[batch, anchors, 4] xyxy input pixels", "scores": "[batch, anchors] 0..1"},
    }

    def metadata(precision: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        return {
            "producer": f"acfd-deploy {__version__}",
            "tool_version": __version__,
            "config": json.dumps(config.to_dict(), sort_keys=True),
            "config_name": config.name,
            "input": json.dumps(input_contract, sort_keys=True),
            "weights": weights_info["source"],
            "weights_sha256": weights_info["sha256"] or "none (random weights)",
            "precision": precision,
            "opset": str(opts.opset),
            **(extra or {}),
        }

    onnx_paths: dict[str, Path] = {}
    with steps.step("onnx_fp32", f"exporting ONNX fp32 (opset {opts.opset}, dynamic batch/height/width)"):
        proto = export_onnx(folded, opset=opts.opset)
        if opts.simplify:
            probes = [batches[-1][:1], batches[0][:1]]
            proto, note = simplify_if_equal(proto, probes)
        else:
            note = "not simplified (--no-simplify)"
        notes["simplify"] = note
        log(f"    {note}")
        set_metadata(proto, metadata("fp32", {"simplify": note}))
        onnx_paths["fp32"] = save_onnx(proto, out / f"{stem}.onnx")
        written.append(onnx_paths["fp32"])

    if opts.fp16:
        from acfd_deploy.export.fp16 import convert_fp16, verify_fp16

        with steps.step("onnx_fp16", "converting ONNX to fp16 (fp32 I/O, decode tail in fp32)"):
            half = convert_fp16(proto)
            dtypes = verify_fp16(half)
            notes["fp16"] = {"conv_weight_dtypes": dtypes}
            set_metadata(half, metadata("fp16", {"kept_fp32": "inputs, outputs, anchors, box decoding, sigmoid"}))
            onnx_paths["fp16"] = save_onnx(half, out / f"{stem}.fp16.onnx")
            written.append(onnx_paths["fp16"])

    if opts.int8:
        from acfd_deploy.export.int8 import quantize_int8

        with steps.step("onnx_int8", f"quantizing ONNX to int8 (Q/DQ, per-channel, {len(calib_images)} calibration images)"):
            q, report = quantize_int8(proto, calib_images)
            notes["int8"] = {**report, "calibration_folder": str(opts.calib)}
            set_metadata(
                q,
                metadata(
                    "int8",
                    {
                        "calibration": f"static MinMax, {len(calib_images)} images from {opts.calib} at {opts.imgsz[0]}x{opts.imgsz[1]}",
                        "kept_fp32": "inputs, outputs, head prediction convs, anchors, box decoding, sigmoid",
                    },
                ),
            )
            onnx_paths["int8"] = save_onnx(q, out / f"{stem}.int8.onnx")
            written.append(onnx_paths["int8"])

    plans: dict[str, Path] = {}
    trt_info: dict[str, Any] = {}
    log(f"  {trt_note}")
    if build_trt:
        from acfd_deploy.export.tensorrt import build_engine, sidecar_path

        for precision, onnx_path in onnx_paths.items():
            plan = out / f"{stem}.{precision}.plan"
            with steps.step(f"tensorrt_{precision}", f"building TensorRT {precision} engine"):
                trt_info[precision] = build_engine(onnx_path, plan, precision, profile, opts.workspace)
            written.extend([plan, sidecar_path(plan)])
            plans[precision] = plan

    judge = _ApJudge(val_set, TorchRunner(folded), opts.imgsz, opts.batch) if val_set is not None else None
    with steps.step("parity", "checking parity of every artifact"):
        for precision, path in onnx_paths.items():
            runner = OnnxRuntimeRunner(path, providers=["CPUExecutionProvider"], precision=precision)
            level = "tensor" if precision == "fp32" else "detection"
            parity = compare(precision, refs, _run(runner, batches), level)
            if precision == "int8" and judge is not None:
                parity = judge(parity, runner)
            records.append(ArtifactRecord(f"ONNX {precision}", "onnx", path, precision, parity))
        for precision, path in plans.items():
            from acfd_deploy.runtime.tensorrt_runner import TensorRTRunner

            trt_runner = TensorRTRunner(path)
            if precision == "fp32":
                parity = compare(precision, refs, _run(trt_runner, batches), "tensor", tol=TRT_FP32_TOL)
            else:
                parity = compare(precision, refs, _run(trt_runner, batches), "detection")
                if precision == "int8" and judge is not None:
                    parity = judge(parity, trt_runner)
            trt_runner.close()
            records.append(ArtifactRecord(f"TensorRT {precision}", "tensorrt", path, precision, parity))

    if judge is not None and judge.reference_ap is not None:
        fold_parity["ap"] = judge.reference_ap  # the reference the int8 AP is held to
        notes["int8_validation"] = {"source": judge.val.source, "faces": judge.val.num_faces, "notes": judge.val.notes}
    passed = all(r.parity.get("passed", False) for r in records)
    manifest = {
        "tool": f"acfd-export {__version__}",
        "created": started.isoformat(timespec="seconds"),
        "passed": passed,
        "config": config.name,
        "weights": weights_info,
        "options": {
            "imgsz": list(opts.imgsz),
            "batch": opts.batch,
            "opset": opts.opset,
            "simplify": opts.simplify,
            "engine": opts.engine,
            "workspace_gib": opts.workspace,
            "fp16": opts.fp16,
            "int8": opts.int8,
            "calib": str(opts.calib) if opts.int8 else None,
            "val_data": str(opts.val_data) if opts.val_data else None,
            "val_count": opts.val_count if opts.int8 else None,
        },
        "parity_images": {
            "source": "acfd_deploy.data synthetic cartoon scenes",
            "batches": [list(b.shape) for b in batches],
            "reference": "PyTorch training graph, fp32, CPU"
            if not already_folded
            else "PyTorch folded graph (deploy checkpoint), fp32, CPU",
        },
        "artifacts": [
            {
                "name": r.name,
                "kind": r.kind,
                "path": r.path.name if r.path else None,
                "size": r.size(),
                "sha256": sha256_file(r.path) if r.path else None,
                "precision": r.precision,
                "parity": r.parity,
                **({"sidecar": f"{r.path.name}.json", "tensorrt": trt_info.get(r.precision)} if r.kind == "tensorrt" and r.path else {}),
            }
            for r in records
        ],
        "tensorrt_profile": profile,
        "notes": notes,
        "step_seconds": steps.times,
        "versions": _versions(),
    }
    manifest_path = out / "export.json"
    with atomic_path(manifest_path) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2, default=str) + "\n")
    written.append(manifest_path)
    return ExportResult(out, stem, records, manifest, passed, trt_note)


# ---------------------------------------------------------------- table


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"


def format_table(result: ExportResult) -> str:
    """An aligned table: artifact, precision, size, raw error, detection match, pass/fail."""
    rows = [("Artifact", "File", "Precision", "Size", "Score err", "Box err", "Det. match", "AP50", "Need", "Parity")]
    for r in result.artifacts:
        p = r.parity
        m = p.get("match", {})
        need = p.get("required", {})
        if p.get("level") == "tensor":
            need_text = f"err<={need['score_abs']:.0e}"
        elif "max_ap_drop" in need:
            need_text = f"AP drop<={need['max_ap_drop']:.2f}"
        else:
            need_text = f"match>={need.get('match_rate', 0):.0%}"
        ap_text = f"{p['ap']:.3f}" if p.get("ap") is not None else "-"
        rows.append(
            (
                r.name,
                r.path.name if r.path else "-",
                r.precision,
                _size(r.size()),
                f"{p.get('score_abs', float('nan')):.1e}",
                f"{p.get('box_rel', float('nan')):.1e}",
                f"{m.get('rate', 0):.2%} of {m.get('reference', 0)}",
                ap_text,
                need_text,
                "PASS" if p.get("passed") else "FAIL",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(wd) for cell, wd in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * wd for wd in widths))
    return "\n".join(lines)


def summary_lines(result: ExportResult) -> list[str]:
    weights = result.manifest["weights"]
    lines = [
        f"Reference: {result.manifest['parity_images']['reference']} on "
        f"{len(result.manifest['parity_images']['batches'])} batches of {result.manifest['parity_images']['source']} "
        f"({', '.join('x'.join(map(str, s)) for s in result.manifest['parity_images']['batches'])})",
        "Score err: max |score - reference|; Box err: max |box - reference| / max(largest |coordinate| of the box, 1); "
        "Det. match: reference detections (score >= 0.3) found again at the same anchor with IoU >= 0.9 and |score diff| <= 0.02",
    ]
    if weights.get("note"):
        lines.append(f"Weights: {weights['note']}")
    val = result.manifest["notes"].get("int8_validation")
    for r in result.artifacts:
        if r.precision == "int8" and r.parity.get("rule") == "ap":
            lines.append(
                f"{r.name} is judged by AP50 (DESIGN.md: drop <= 1 point against the PyTorch model's "
                f"{r.parity['reference_ap']:.3f}) on {val['source'] if val else 'the validation set'}"
            )
        elif r.precision == "int8" and r.parity.get("rule") == "match":
            lines.append(f"{r.name} is judged by detection match rate: {r.parity['why']}")
    lines.append(result.tensorrt_note)
    lines.append(f"Artifacts and figures: {result.out / 'export.json'}")
    return lines

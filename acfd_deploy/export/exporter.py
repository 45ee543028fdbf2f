"""The export, run as a whole: a staged folder, the steps one by one (build, verify,
record), the manifest, and the swap that makes the new export the folder's contents.

Nothing lost: everything is built in a staging folder beside ``--out`` and swapped in
atomically only at the end (:mod:`acfd_deploy.staging`), so an interrupted re-export
leaves the previous export exactly as its ``export.json`` lists it. A failed export never
replaces a verified one: it goes to ``<out>.failed`` for inspection. Nothing vacuous: an
artifact no rule could judge is recorded as unverified (``passed: null``), never as passed,
and ``--strict`` makes that an error.
"""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np

from acfd_deploy import __version__
from acfd_deploy.configs import ModelConfig
from acfd_deploy.errors import AcfdError
from acfd_deploy.export.e2e_steps import e2e_scales
from acfd_deploy.export.options import ExportOptions, validate
from acfd_deploy.export.source import artifact_stem, resolve_model
from acfd_deploy.export.steps import Artifact, ExportContext, plan_steps
from acfd_deploy.export.tensorrt import engine_profile, tensorrt_status
from acfd_deploy.manifest import MANIFEST_NAME, MANIFEST_VERSION, artifact_entry, overall, read_manifest, versions, write_manifest
from acfd_deploy.model.anchors import min_input_size
from acfd_deploy.reparam import is_reparameterized
from acfd_deploy.runtime.device import resolve_device
from acfd_deploy.runtime.registry import load_runner
from acfd_deploy.runtime.torch_runner import TorchRunner
from acfd_deploy.staging import check_target, staged_folder
from acfd_deploy.tritonrepo import choose_artifact, write_model_repository
from acfd_deploy.tritonrepo.e2e_repo import choose_e2e_artifact
from acfd_deploy.verify.accuracy import SYNTHETIC_VAL_SEED, ValidationSet, check_enough_faces, read_validation_set, synthetic_validation_set
from acfd_deploy.verify.inputs import describe, parity_inputs
from acfd_deploy.verify.verifier import Verifier


@dataclass
class ExportResult:
    out: Path  # where the export now is (``<out>.failed`` when it failed beside a verified one)
    stem: str
    artifacts: list[Artifact]
    manifest: dict[str, Any]
    status: str  # passed | failed | unverified
    kept_previous: bool  # a failed export left the previous verified export in --out
    triton_repo: Path | None = None  # the model repository written for the stock Triton server
    k8s_dir: Path | None = None  # Kubernetes manifests for that repository

    @property
    def passed(self) -> bool | None:
        return cast("bool | None", self.manifest["passed"])


class StepTimer:
    """Step lines with timings, and the seconds of each step for the manifest."""

    def __init__(self, log: Callable[[str], None]) -> None:
        self.log = log
        self.times: dict[str, float] = {}

    @contextmanager
    def step(self, key: str, text: str) -> Iterator[None]:
        t0 = time.perf_counter()
        self.log(f"  {text} ...")
        yield
        dt = time.perf_counter() - t0
        self.times[key] = round(self.times.get(key, 0.0) + dt, 3)
        self.log(f"  {text}: done in {dt:.1f} s")


def _log_default(msg: str) -> None:
    print(msg, flush=True)


def _validation_set(opts: ExportOptions) -> ValidationSet:
    if opts.val_data is not None and opts.val_images is not None:
        val = read_validation_set(opts.val_data, opts.val_images, opts.val_count)
        check_enough_faces(val, "label more images, or raise --val-count if it cut the set short")
    else:
        val = synthetic_validation_set(opts.val_count, opts.imgsz, SYNTHETIC_VAL_SEED + opts.seed)
        check_enough_faces(val, "raise --val-count")
    return val


def tensorrt_plan(opts: ExportOptions) -> tuple[bool, str, str]:
    """``(build, note, device)``: whether TensorRT plans are built, the line that says so,
    and the device they are built and verified on. Both come from the TensorRT backend's
    own device answer, so a CPU-only torch on a GPU machine builds and verifies plans on
    the GPU (torch's answer would say "cpu", where no plan runs)."""
    if opts.engine == "onnx":
        return False, "TensorRT: skipped (--engine onnx)", "cpu"
    if opts.device == "cpu":
        return False, "TensorRT: skipped (--device cpu)", "cpu"
    ok, why = tensorrt_status()
    if not ok:
        return False, f"TensorRT: skipped ({why})", "cpu"
    return True, f"TensorRT {why}: building engines", str(resolve_device(opts.device, backend="tensorrt"))


def _prepare(opts: ExportOptions, stage: Path, timer: StepTimer) -> tuple[ExportContext, ValidationSet | None, bool]:
    """Everything read before the first artifact: weights, sizes, calibration, validation."""
    with timer.step("load", "loading weights"):
        model, weights = resolve_model(opts)
    config = cast(ModelConfig, model.config)
    min_side = min_input_size(config)
    h, w = opts.imgsz
    if min(h, w) < min_side:
        raise AcfdError(f"--imgsz {h} {w} is below the minimum side {min_side} of {config.name} ({config.num_levels} pyramid levels)")
    if opts.pt2:
        from acfd_deploy.export.pt2 import export_min_side

        if min(h, w) < export_min_side(config):
            raise AcfdError(
                f"--pt2: --imgsz {h} {w} is below {export_min_side(config)} px, the smallest side a torch.export graph of "
                f"{config.name} takes (docs/export.md#aotinductor-packages-pt2); use a larger --imgsz or leave out --pt2"
            )
    calib_images: list[np.ndarray] = []
    val_set = None
    notes: dict[str, Any] = {}
    if opts.int8:
        from acfd_deploy.export.int8 import load_calibration
        from acfd_deploy.resources import calibration_dir

        calib = opts.calib if opts.calib is not None else calibration_dir()
        notes["calibration_folder"] = str(calib) if opts.calib is not None else "the bundled calibration images"
        with timer.step("calib_load", f"reading calibration images from {notes['calibration_folder']}"):
            calib_images = load_calibration(calib, opts.imgsz, min_side, opts.calib_limit)
        with timer.step("val_load", "preparing the labelled validation set for the int8 AP check"):
            val_set = _validation_set(opts)
        timer.log(f"    {val_set.source}, {val_set.num_faces} faces")
        for note in val_set.notes:
            timer.log(f"    warning: {note}")
    build_trt, notes["tensorrt"], build_device = tensorrt_plan(opts)
    ctx = ExportContext(
        opts=opts,
        stage=stage,
        stem=artifact_stem(opts, config.name),
        model=model,
        config=config,
        weights=weights,
        parity_inputs=parity_inputs(opts.imgsz, opts.parity_images, opts.batch, opts.seed),
        calib_images=calib_images,
        profile=engine_profile(opts.imgsz, opts.batch, min_side),
        build_device=build_device,
        log=timer.log,
        notes=notes,
    )
    return ctx, val_set, build_trt


def _verify(artifact: Artifact, verifier: Any) -> None:
    with load_runner(artifact.path, device=artifact.verify_device, backend=artifact.backend, **artifact.runner_options) as runner:
        artifact.verdict = verifier.verify(runner, artifact.precision, artifact.backend)


def _run_steps(ctx: ExportContext, val_set: ValidationSet | None, timer: StepTimer, build_trt: bool) -> list[Artifact]:
    label = "PyTorch folded graph (deploy checkpoint)" if is_reparameterized(ctx.model) else "PyTorch training graph"
    verifier = Verifier(TorchRunner(ctx.model, name=label), ctx.parity_inputs, val_set, ctx.opts.imgsz, ctx.opts.batch)
    with timer.step("reference", f"running the {label} (reference)"):
        _ = verifier.reference_outputs
    artifacts: list[Artifact] = []
    for step in plan_steps(ctx.opts, build_trt):
        with timer.step(step.key, step.title):
            built = step.build(ctx)
        for artifact in built:
            with timer.step("verify", f"verifying {artifact.name}"):
                _verify(artifact, verifier)
            assert artifact.verdict is not None
            timer.log(f"    {artifact.name}: {artifact.verdict.status.value} ({artifact.verdict.rule} rule)")
            artifacts.append(artifact)
        if step.key == "fold" and ctx.folded is not None:
            # the folded graph is faster than the training graph and now proven equal to it
            verifier.ap_reference = TorchRunner(ctx.folded, name="PyTorch folded graph")
    if val_set is not None:
        ctx.notes["int8_validation"] = {"source": val_set.source, "faces": val_set.num_faces, "notes": val_set.notes}
        ctx.notes["reference_ap"] = verifier.reference_ap
    return artifacts


def _manifest(ctx: ExportContext, artifacts: list[Artifact], started: _dt.datetime, timer: StepTimer, label: str) -> dict[str, Any]:
    status, passed = overall([a.verdict.passed if a.verdict else None for a in artifacts])
    opts = ctx.opts
    return {
        "manifest_version": MANIFEST_VERSION,
        "tool": f"acfd-export {__version__}",
        "created": started.isoformat(timespec="seconds"),
        "status": status,
        "passed": passed,
        "strict": opts.strict,
        "unverified": [a.name for a in artifacts if a.verdict is not None and a.verdict.passed is None],
        "config": ctx.config.name,
        "weights": ctx.weights.to_dict(),
        "options": {
            "imgsz": list(opts.imgsz),
            "batch": opts.batch,
            "opset": opts.opset,
            "simplify": opts.simplify,
            "engine": opts.engine,
            "device": opts.device,
            "workspace_gib": opts.workspace,
            "fp16": opts.fp16,
            "int8": opts.int8,
            "openvino": opts.openvino,
            "end2end": ({"scales": [list(s) for s in e2e_scales(opts)], "keep_ratio": opts.keep_ratio} if opts.end2end else None),
            "pt2": opts.pt2,
            "calib": ctx.notes.get("calibration_folder") if opts.int8 else None,
            "val_data": str(opts.val_data) if opts.val_data else None,
            "val_count": opts.val_count if opts.int8 else None,
        },
        "parity_images": {**describe(ctx.parity_inputs), "reference": f"{label}, fp32, CPU"},
        "artifacts": [artifact_entry(a) for a in artifacts],
        "tensorrt_profile": ctx.profile,
        "notes": ctx.notes,
        "step_seconds": timer.times,
        "versions": versions(),
    }


def failed_folder(out: Path) -> Path:
    """Where an export that failed beside a verified one is kept for inspection."""
    return out.with_name(out.name + ".failed")


def _previous_passed(out: Path) -> bool:
    try:
        return read_manifest(out).get("passed") is True
    except AcfdError:
        return False


def run_export(opts: ExportOptions, log: Callable[[str], None] = _log_default) -> ExportResult:
    """Do the whole export. Bad input raises :class:`AcfdError` before anything is
    written; an interruption or error leaves ``opts.out`` as it was."""
    validate(opts)
    out = Path(opts.out).absolute()
    timer = StepTimer(log)
    started = _dt.datetime.now(_dt.timezone.utc)
    with staged_folder(out, MANIFEST_NAME, "acfd-export output") as stage:
        ctx, val_set, build_trt = _prepare(opts, stage.path, timer)
        log(f"  {ctx.notes['tensorrt']}")
        artifacts = _run_steps(ctx, val_set, timer, build_trt)
        label = "PyTorch folded graph (deploy checkpoint)" if is_reparameterized(ctx.model) else "PyTorch training graph"
        manifest = _manifest(ctx, artifacts, started, timer, label)
        write_manifest(stage.path, manifest)
        accepted = manifest["passed"] is True or (manifest["passed"] is None and not opts.strict)
        kept_previous = not accepted and _previous_passed(out)
        if kept_previous:
            check_target(failed_folder(out), MANIFEST_NAME, "acfd-export output")
        where = stage.commit(failed_folder(out) if kept_previous else None)
    artifacts = [_moved(a, stage.path, where) for a in artifacts]
    result = ExportResult(where, ctx.stem, artifacts, manifest, manifest["status"], kept_previous)
    if opts.triton_repo is not None and accepted:
        with timer.step("triton_repo", f"writing the Triton model repository {opts.triton_repo}"):
            result.triton_repo = write_triton_repository(opts, where)
    if opts.k8s_dir is not None and result.triton_repo is not None:
        with timer.step("k8s", f"writing Kubernetes manifests {opts.k8s_dir}"):
            result.k8s_dir = write_k8s(opts, result.triton_repo)
    return result


def write_k8s(opts: ExportOptions, repo: Path) -> Path:
    """Manifests for the stock server on ``repo``: its models and its artifact's sha256
    (the pod annotation that rolls the pods when a new export is applied)."""
    from acfd_deploy.k8s import DEFAULT_TRITON_IMAGE, K8sOptions, manifest_files, read_repository_record, triton_workload, write_manifests

    assert opts.k8s_dir is not None
    record = read_repository_record(repo)
    plan = record.get("platform") == "tensorrt_plan"
    gpus = opts.k8s_gpus if opts.k8s_gpus is not None else int(plan)
    k8s = K8sOptions(image=opts.k8s_image or DEFAULT_TRITON_IMAGE, gpus=gpus)
    files = manifest_files(k8s, triton_workload(record, k8s), kserve_uri=f"pvc://{k8s.claim}/", what=f"the Triton repository {repo.name}")
    return write_manifests(opts.k8s_dir, files)


def write_triton_repository(opts: ExportOptions, export_dir: Path) -> Path:
    """The verified artifact (a plan where one passed, else the ONNX file) in a model
    repository for the stock server, staged and swapped in like the export itself; with
    it, as ``acfd_e2e``, the verified end-to-end artifact of that precision where the
    export has one (--end2end)."""
    assert opts.triton_repo is not None
    artifact = choose_artifact(export_dir, opts.triton_precision)
    e2e = choose_e2e_artifact(export_dir, opts.triton_precision)
    with staged_folder(Path(opts.triton_repo), "acfd-repository.json", "Triton model repository") as stage:
        write_model_repository(stage.path, artifact, precision=opts.triton_precision, imgsz=opts.imgsz, e2e_artifact=e2e)
        return stage.commit()


def _moved(artifact: Artifact, old: Path, new: Path) -> Artifact:
    artifact.files = [new / f.relative_to(old) for f in artifact.files]
    return artifact

"""A model repository for the **stock** Triton server (the NGC container, GPU nodes,
Kubernetes): ``acfd_engine`` is the verified artifact itself, byte for byte, as
``model.plan`` (platform ``tensorrt_plan``) or ``model.onnx`` (``onnxruntime_onnx``), plus a
README on running and scaling it (:mod:`acfd_deploy.tritonrepo.readme`); optionally the
end-to-end ``acfd`` (Python backend) calling that engine through BLS.

What an artifact is (precision, profile, minimum side) is read from the files acfd-export
writes (ONNX metadata, the plan's sidecar) through the runtime layer; whether it passed
verification, from its ``export.json`` (:mod:`acfd_deploy.tritonrepo.verified`).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from pathlib import Path
from typing import Any

from acfd_deploy.errors import AcfdError
from acfd_deploy.fileio import require_file
from acfd_deploy.manifest import MANIFEST_VERSION, read_manifest
from acfd_deploy.pipeline.detector import DEFAULT_SCALE
from acfd_deploy.pipeline.preprocess import DEFAULT_MIN_SIZE
from acfd_deploy.runtime.plan import PLAN_SUFFIXES, read_sidecar
from acfd_deploy.tritonrepo.e2e_repo import e2e_facts, is_e2e_entry, write_e2e_model
from acfd_deploy.tritonrepo.params import BLS_PREFIX, ModelParams
from acfd_deploy.tritonrepo.pbtxt import DEFAULT_MAX_BATCH, DEFAULT_QUEUE_DELAY_US, E2E, END_TO_END, ENGINE, engine_config
from acfd_deploy.tritonrepo.readme import repository_readme
from acfd_deploy.tritonrepo.repository import check_common, copy_verified, fresh_dir, stock_placement, write_end_to_end, write_text
from acfd_deploy.tritonrepo.verified import recorded_sha


def onnx_min_size(path: Path) -> int:
    """The network's minimum input side, from the ``input`` metadata acfd-export writes
    (:data:`DEFAULT_MIN_SIZE` where a file does not say)."""
    from google.protobuf.message import DecodeError

    from acfd_deploy.runtime.onnx_runner import onnx_metadata

    try:
        meta = onnx_metadata(path)
        return int(json.loads(meta.get("input", "{}")).get("min_side", DEFAULT_MIN_SIZE))
    except (OSError, ValueError, TypeError, AttributeError, DecodeError):
        return DEFAULT_MIN_SIZE


def _artifact_facts(artifact: Path) -> dict[str, Any]:
    """Platform, file name, precision, batch/size limits and minimum side of an artifact."""
    suffix = artifact.suffix.lower()
    if suffix in PLAN_SUFFIXES:
        sidecar = read_sidecar(artifact)
        profile = sidecar["profile"]
        return {
            "platform": "tensorrt_plan",
            "file": "model.plan",
            "precision": str(sidecar.get("precision", "fp32")),
            "profile": profile,
            "min_size": int(min(profile["min"][2:])),
            "tensorrt_version": sidecar.get("tensorrt_version"),
            "gpu": sidecar.get("gpu"),
            "compute_capability": sidecar.get("compute_capability"),
        }
    if suffix == ".onnx":
        from acfd_deploy.runtime.onnx_runner import precision_of

        return {
            "platform": "onnxruntime_onnx",
            "file": "model.onnx",
            "precision": precision_of(artifact),
            "profile": None,
            "min_size": onnx_min_size(artifact),
        }
    raise AcfdError(f"the stock Triton server takes a .onnx or .plan artifact, not {artifact.name}")


def choose_artifact(export_dir: str | os.PathLike[str], precision: str = "fp32", prefer_plan: bool = True) -> Path:
    """The verified artifact of ``precision`` in an acfd-export folder (its ``export.json``):
    the TensorRT plan where one was built and passed verification, else the ONNX file."""
    out = Path(export_dir)
    manifest = read_manifest(out)
    if manifest.get("manifest_version") != MANIFEST_VERSION:
        raise AcfdError(f"{out / 'export.json'} is not a version {MANIFEST_VERSION} manifest (an older acfd-export): export again")
    candidates = {
        a["kind"]: out / a["path"]
        for a in manifest["artifacts"]
        if a.get("precision") == precision
        and a.get("kind") in ("onnx", "tensorrt")
        and a.get("passed") is True
        and a.get("path")
        and not is_e2e_entry(a)  # the end-to-end files go to acfd_e2e
    }
    for kind in ("tensorrt", "onnx") if prefer_plan else ("onnx",):
        if kind in candidates and candidates[kind].is_file():
            return candidates[kind]
    raise AcfdError(f"{out} holds no verified {precision} ONNX or TensorRT artifact (see its export.json)")


def write_model_repository(
    repo_dir: str | os.PathLike[str],
    artifact_path: str | os.PathLike[str],
    *,
    precision: str | None = None,
    max_batch: int | None = None,
    imgsz: tuple[int, int] | None = None,
    instances: int = 1,
    max_queue_delay_us: int = DEFAULT_QUEUE_DELAY_US,
    end_to_end: bool = False,
    scales: tuple[tuple[int, int], ...] = (DEFAULT_SCALE,),
    keep_ratio: bool = False,
    e2e_artifact: str | os.PathLike[str] | None = None,
) -> Path:
    """A model repository for the stock ``tritonserver --model-repository DIR``.

    ``acfd_engine/1/model.plan`` (``tensorrt_plan``, one instance per GPU) or
    ``acfd_engine/1/model.onnx`` (``onnxruntime_onnx``; GPU where the server has one, else
    CPU), copied byte for byte and checked against the sha256 in the ``export.json`` beside
    it. ``max_batch_size``: ``max_batch``, or the plan's profile (which also caps it), or
    :data:`DEFAULT_MAX_BATCH` for ONNX. ``imgsz`` (H, W): the warm-up request's size.
    ``end_to_end`` adds ``acfd`` (Python backend, BLS to the engine; needs acfd-deploy
    installed in the server's Python). ``e2e_artifact`` (a verified end-to-end file,
    acfd-export --end2end) adds ``acfd_e2e``: decoded pixels in, faces out, no Python
    backend (:mod:`acfd_deploy.tritonrepo.e2e_repo`). Returns the repository folder.
    """
    artifact = require_file(artifact_path, "artifact")
    recorded = recorded_sha(artifact)  # before anything is written
    facts = _artifact_facts(artifact)
    if e2e_artifact is not None:  # its refusals too
        recorded_sha(Path(e2e_artifact))
        e2e_facts(Path(e2e_artifact))
    if precision is not None and precision != facts["precision"]:
        raise AcfdError(f"{artifact.name} is {facts['precision']}, not {precision}")
    profile = facts["profile"]
    if profile is not None:
        cap = int(profile["max"][0])
        if max_batch is not None and max_batch > cap:
            raise AcfdError(f"{artifact.name} was built for batches up to {cap}; rebuild it with acfd-export --batch {max_batch}")
        batch = max_batch or cap
    else:
        batch = max_batch or DEFAULT_MAX_BATCH
    check_common(batch, max_queue_delay_us, instances)
    warmup_hw: tuple[int, int] = (int(imgsz[0]), int(imgsz[1])) if imgsz else DEFAULT_SCALE
    if imgsz is None and profile is not None:
        warmup_hw = (int(profile["opt"][2]), int(profile["opt"][3]))
    repo = Path(repo_dir)
    fresh_dir(repo, [ENGINE, END_TO_END, E2E])

    digest = copy_verified(artifact, repo / ENGINE / "1" / facts["file"], recorded)

    plan = facts["platform"] == "tensorrt_plan"
    params = {"precision": facts["precision"], "min_size": str(facts["min_size"]), "source": artifact.name, "sha256": digest}
    comment = [
        f"acfd_engine: the raw ACFD network ({facts['precision']}), {artifact.name} byte for byte, for the stock Triton server.",
        "images FP32 [3,-1,-1] RGB 0..255 -> boxes FP32 [-1,4] xyxy input pixels, scores FP32 [-1] 0..1.",
    ]
    if plan:
        comment.append(f"Built with TensorRT {facts['tensorrt_version']} on {facts['gpu']}: it runs only there (see README.md).")
    head, group = stock_placement(facts["platform"], facts["file"], instances)
    write_text(
        repo / ENGINE / "config.pbtxt",
        engine_config(
            head=head,
            comment=comment,
            max_batch=batch,
            queue_delay_us=max_queue_delay_us,
            instance_group=group,
            params=params,
            warmup_hw=warmup_hw,
        ),
    )
    if end_to_end:
        e2e = ModelParams(
            precision=facts["precision"], min_size=facts["min_size"], scales=scales, keep_ratio=keep_ratio, engine=BLS_PREFIX + ENGINE
        )
        write_end_to_end(
            repo,
            e2e,
            max_batch=batch,
            queue_delay_us=max_queue_delay_us,
            instances=instances,
            where="Needs acfd-deploy (and torch) installed in the server's Python; see README.md.",
        )
    e2e_model = None
    if e2e_artifact is not None:
        e2e_model = write_e2e_model(
            repo,
            Path(e2e_artifact),
            max_batch=batch,
            instances=instances,
            queue_delay_us=max_queue_delay_us,
            warmup_hw=warmup_hw,
            precision=facts["precision"],
        )
    record = {
        "format": "acfd-triton-repository/1",
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "artifact": artifact.name,
        "sha256": digest,
        "platform": facts["platform"],
        "precision": facts["precision"],
        "max_batch_size": batch,
        "profile": profile,
        "tensorrt_version": facts.get("tensorrt_version"),
        "gpu": facts.get("gpu"),
        "models": [ENGINE, *([END_TO_END] if end_to_end else []), *([E2E] if e2e_model else [])],
        **({E2E: {k: e2e_model[k] for k in ("artifact", "sha256", "platform", "max_batch_size")}} if e2e_model else {}),
    }
    write_text(repo / "acfd-repository.json", json.dumps(record, indent=2) + "\n")
    write_text(repo / "README.md", repository_readme(record, facts, end_to_end, instances, e2e_model))
    return repo

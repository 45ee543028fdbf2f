"""The model ``acfd_e2e`` of a stock-server repository: the verified end-to-end artifact
(acfd-export --end2end) byte for byte, so the **stock** Triton server returns faces from
decoded pixels with no Python backend at all.

``images UINT8 [b, H, W, 3]`` RGB (``max_batch_size`` gives the batch dimension) ->
``num_dets INT32 [b, 1]``, ``det_boxes FP32 [b, 100, 4]`` xyxy input pixels,
``det_scores FP32 [b, 100]``: the graph resizes to its test scale(s), merges them and runs
NMS itself. Platform ``tensorrt_plan`` where a verified end-to-end plan exists, else
``onnxruntime_onnx``. Triton's dynamic batcher merges only requests whose H and W are
equal, so batching pays off for same-size streams (a camera, a resized feed).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from acfd_deploy.errors import AcfdError
from acfd_deploy.manifest import MANIFEST_VERSION, read_manifest
from acfd_deploy.runtime.end2end import is_end2end, parse_end2end
from acfd_deploy.runtime.plan import PLAN_SUFFIXES, read_sidecar
from acfd_deploy.tritonrepo.pbtxt import E2E, e2e_config
from acfd_deploy.tritonrepo.repository import copy_verified, stock_placement, write_text
from acfd_deploy.tritonrepo.verified import recorded_sha


def is_e2e_entry(entry: dict[str, Any]) -> bool:
    """An export.json artifact row of an end-to-end file (the e2e export steps mark them)."""
    return bool((entry.get("details") or {}).get("end2end"))


def choose_e2e_artifact(export_dir: str | os.PathLike[str], precision: str = "fp32") -> Path | None:
    """The verified end-to-end artifact of ``precision`` in an acfd-export folder: its
    TensorRT plan where one passed, else its ONNX file; None where it has none (an
    export without --end2end)."""
    out = Path(export_dir)
    manifest = read_manifest(out)
    if manifest.get("manifest_version") != MANIFEST_VERSION:
        return None
    found = {
        a["kind"]: out / a["path"]
        for a in manifest["artifacts"]
        if is_e2e_entry(a) and a.get("precision") == precision and a.get("passed") is True and a.get("path")
    }
    for kind in ("tensorrt", "onnx"):
        if kind in found and found[kind].is_file():
            return found[kind]
    return None


def e2e_facts(artifact: Path) -> dict[str, Any]:
    """Platform, file name, scales and max detections of an end-to-end artifact; bad input
    for a raw network (which belongs in ``acfd_engine``)."""
    suffix = artifact.suffix.lower()
    if suffix in PLAN_SUFFIXES:
        sidecar = read_sidecar(artifact)
        if not is_end2end({k: str(v) for k, v in sidecar.items()}):
            raise AcfdError(f"{artifact.name} is not an end-to-end plan (its sidecar does not say graph: end2end)")
        profile = sidecar["profile"]
        return {"platform": "tensorrt_plan", "file": "model.plan", "max_batch": int(profile["max"][0]), "max_det": 100, "kind": "GPU"}
    if suffix == ".onnx":
        from acfd_deploy.runtime.onnx_runner import onnx_metadata

        try:
            meta = onnx_metadata(artifact)
        except Exception as exc:  # not an ONNX file at all (a DecodeError, an OSError)
            raise AcfdError(f"{artifact.name} cannot be read as ONNX ({type(exc).__name__})") from None
        if not is_end2end(meta):
            raise AcfdError(f"{artifact.name} is a raw network, not an end-to-end graph (acfd-export --end2end writes NAME.e2e.onnx)")
        info = parse_end2end(meta, artifact.name)
        return {"platform": "onnxruntime_onnx", "file": "model.onnx", "max_batch": None, "max_det": info.max_det, "scales": info.scales}
    raise AcfdError(f"the stock Triton server takes a .onnx or .plan end-to-end artifact, not {artifact.name}")


def write_e2e_model(
    repo: Path,
    artifact: Path,
    *,
    max_batch: int,
    instances: int,
    queue_delay_us: int,
    warmup_hw: tuple[int, int],
    precision: str,
) -> dict[str, Any]:
    """``repo/acfd_e2e``: ``artifact`` copied byte for byte (checked against the sha256 in
    the export.json beside it) and its config.pbtxt. Returns what the README and
    acfd-repository.json say about it."""
    recorded = recorded_sha(artifact)
    facts = e2e_facts(artifact)
    plan = facts["platform"] == "tensorrt_plan"
    batch = min(max_batch, facts["max_batch"]) if facts["max_batch"] else max_batch
    digest = copy_verified(artifact, repo / E2E / "1" / facts["file"], recorded)
    scales = facts.get("scales")
    shown = " + ".join(f"{h}x{w}" for h, w in scales) if scales else "its export's"
    comment = [
        f"acfd_e2e: {artifact.name} ({precision}) byte for byte: image to faces in one engine, no Python backend.",
        f"images UINT8 [-1,-1,3] RGB as decoded -> num_dets INT32 [1], det_boxes FP32 [{facts['max_det']},4] xyxy image pixels,",
        f"det_scores FP32 [{facts['max_det']}]; resize to test scale(s) {shown}, decode, merge and NMS inside the graph.",
        "The dynamic batcher merges only requests of the same H and W (one tensor per batch): others run alone.",
    ]
    head, group = stock_placement(facts["platform"], facts["file"], instances)
    write_text(
        repo / E2E / "config.pbtxt",
        e2e_config(
            head=head,
            comment=comment,
            max_batch=batch,
            queue_delay_us=queue_delay_us,
            instance_group=group,
            params={"precision": precision, "source": artifact.name, "sha256": digest},
            max_det=int(facts["max_det"]),
            warmup_hw=None if plan else warmup_hw,  # a plan's profile may not cover it
        ),
    )
    return {**facts, "artifact": artifact.name, "sha256": digest, "max_batch_size": batch, "precision": precision}

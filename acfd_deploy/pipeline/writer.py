"""acfd-detect's outputs: annotated images, the challenge CSV and a JSON, written as one
folder that replaces the previous one only when complete (:mod:`acfd_deploy.staging`)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from acfd_deploy.errors import AcfdError
from acfd_deploy.pipeline.detector import Detector
from acfd_deploy.pipeline.io import ImageLoadError, load_image

MARKER = "detections.json"
_SAVE_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".bmp": "BMP", ".webp": "WEBP"}


@dataclass
class DetectReport:
    out: Path
    images: int
    detections: int
    confident: int  # detections scoring at least the drawing threshold
    errors: list[dict[str, str]] = field(default_factory=list)


def check_unique_names(paths: Sequence[Path]) -> None:
    seen: dict[str, Path] = {}
    for p in paths:
        if p.name in seen:
            raise AcfdError(
                f"two inputs share the file name {p.name!r} ({seen[p.name]} and {p}); the challenge CSV keys images by file name"
            )
        seen[p.name] = p


def _annotated_name(path: Path) -> tuple[str, str]:
    """Same name and format as the input where PIL writes it; PNG otherwise (e.g. TIFF)."""
    fmt = _SAVE_FORMATS.get(path.suffix.lower())
    return (path.name, fmt) if fmt else (path.stem + ".png", "PNG")


def write_detections(
    detector: Detector,
    paths: Sequence[Path],
    out: str | os.PathLike[str],
    conf: float = 0.5,
    draw: bool = True,
    progress: bool = True,
    meta: dict[str, Any] | None = None,
) -> DetectReport:
    """Detect on every file, skipping (and listing) those that are no image; write
    ``annotated/``, ``detections.csv`` and ``detections.json`` into ``out`` as a whole."""
    from tqdm import tqdm

    from acfd_deploy.data.icartoon import write_annotations
    from acfd_deploy.pipeline.draw import draw_detections
    from acfd_deploy.staging import staged_folder

    if not 0.0 <= conf <= 1.0:
        raise AcfdError(f"--conf must be in [0, 1], got {conf}")
    check_unique_names(paths)
    target = Path(out)
    with staged_folder(target, MARKER, "acfd-detect output") as stage:
        annotated = stage.path / "annotated"
        boxes: dict[str, np.ndarray] = {}
        scores: dict[str, np.ndarray] = {}
        records: list[dict[str, Any]] = []
        errors: list[dict[str, str]] = []
        bar = tqdm(total=len(paths), desc="detect", unit="img", disable=None if progress else True, file=sys.stderr)
        for path, result in detector.detect_paths(paths):
            bar.update(1)
            if isinstance(result, ImageLoadError):
                errors.append({"path": str(path), "error": str(result)})
                tqdm.write(f"warning: skipped {result}", file=sys.stderr)
                continue
            boxes[path.name], scores[path.name] = result.boxes, result.scores
            detections = [
                {"box": [round(float(v), 2) for v in b], "score": round(float(s), 6)} for b, s in zip(result.boxes, result.scores)
            ]
            records.append(
                {"image": path.name, "path": str(path), "height": result.height, "width": result.width, "detections": detections}
            )
            if draw:
                annotated.mkdir(exist_ok=True)
                name, fmt = _annotated_name(path)
                picture = draw_detections(load_image(path), result.boxes, result.scores, conf)
                picture.save(annotated / name, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
        bar.close()
        if not records:
            raise AcfdError(f"none of the {len(paths)} input files could be read as an image (first: {errors[0]['error']})")
        write_annotations(stage.path / "detections.csv", boxes, scores, kind="det", decimals=2)
        cfg = detector.config
        document = {
            **(meta or {}),
            "runner": detector.runner.name,
            "precision": detector.runner.precision,
            "scales": [list(s) for s in cfg.scales],
            "keep_ratio": cfg.keep_ratio,
            "score_threshold": cfg.post.score_threshold,
            "pre_nms_topk": cfg.post.pre_nms_topk,
            "nms_iou": cfg.post.nms_iou,
            "max_det": cfg.post.max_det,
            "draw_conf": conf,
            "images": records,
            "errors": errors,
        }
        (stage.path / MARKER).write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
        stage.commit()
    n_det = sum(len(r["detections"]) for r in records)
    n_conf = sum(1 for r in records for d in r["detections"] if d["score"] >= conf)
    return DetectReport(target, len(records), n_det, n_conf, errors)

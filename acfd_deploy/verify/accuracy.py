"""The evidence for judging int8 by accuracy: AP50 on a labelled validation set.

Why not tensors or the anchor-by-anchor detection match: quantization moves scores by a
few hundredths everywhere, so on a trained network many detections miss the fp16 match
rule (|score diff| <= 0.02) while the detector is no worse (measured on a first demo
model: 85% of detections matched, and AP50 did not drop). What a user loses is AP, so
that is what is held (:class:`acfd_deploy.verify.rules.ApRule`):
``AP50(int8) >= AP50(reference) - 0.01``. AP needs a model that detects something; the
rule says when it cannot judge.

The validation set is the user's (``--val-data``/``--val-images``, e.g. iCartoonFace
val) or, by default, synthetic cartoon scenes made in memory by :mod:`acfd_deploy.data`
from a seed no training run uses.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from acfd_deploy.errors import AcfdError

# How many faces a 1-point tolerance needs. Measured on the demo model (int8 against fp32,
# 256x320, synthetic scenes): the AP50 difference has a mean of 0.15 points and a spread
# (SD over disjoint subsets) of 0.44 points on ~270 faces and 0.29 on ~540; one run on 40
# faces showed 1.0 point and one on 265 faces 1.3. At 500 faces a chance failure of the
# rule is about 0.2%; the default, 128 synthetic scenes, holds about 600.
DEFAULT_VAL_IMAGES = 128
MIN_VAL_FACES = 500
# acfd-train --synthetic uses seeds 1000*s + 1 and + 2; 4242 is the held-out set of the
# demo model's card, so an export of the demo model is judged on images it never saw
SYNTHETIC_VAL_SEED = 4242


@dataclass
class ValidationSet:
    """Images ``uint8 [H, W, 3]`` RGB with their face boxes ``float64 [K, 4]`` (xyxy)."""

    names: list[str]
    images: list[np.ndarray]
    boxes: list[np.ndarray]
    source: str
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def num_faces(self) -> int:
        return int(sum(len(b) for b in self.boxes))


def check_enough_faces(val: ValidationSet, how_to_add: str) -> None:
    """Refuse a validation set too small for a 1-point AP tolerance (see MIN_VAL_FACES):
    with fewer faces, chance, not quantization, decides the verdict."""
    if val.num_faces < MIN_VAL_FACES:
        raise AcfdError(
            f"the int8 AP check needs at least {MIN_VAL_FACES} faces and {val.source} has {val.num_faces} "
            f"(one face would move AP50 by {100 / max(val.num_faces, 1):.1f} points); {how_to_add}"
        )


def synthetic_validation_set(count: int, size: tuple[int, int], seed: int = SYNTHETIC_VAL_SEED) -> ValidationSet:
    from acfd_deploy.data.synth import generate_sample, sample_rng

    if count < 1:
        raise AcfdError(f"the validation set needs at least one image, got {count}")
    names, images, boxes = [], [], []
    for i in range(count):
        image, faces = generate_sample(sample_rng(seed, i), *size)
        names.append(f"synth_{seed}_{i:06d}")
        images.append(image)
        boxes.append(faces)
    return ValidationSet(names, images, boxes, f"{count} synthetic cartoon scenes ({size[0]}x{size[1]}, seed {seed})")


def read_validation_set(csv_path: str | os.PathLike[str], images_dir: str | os.PathLike[str], limit: int | None = None) -> ValidationSet:
    """A labelled set in the iCartoonFace CSV format; the first ``limit`` images it names
    that exist on disk. Missing or unreadable images are skipped with a note; none at all
    is an error."""
    from acfd_deploy.data.icartoon import read_annotations
    from acfd_deploy.pipeline.io import ImageLoadError, load_image

    root = Path(images_dir)
    if not root.is_dir():
        raise AcfdError(f"--val-images: not a directory: {root}")
    ann = read_annotations(csv_path, kind="auto")
    if not ann.boxes:
        raise AcfdError(f"--val-data {csv_path}: no usable rows")
    names: list[str] = []
    images: list[np.ndarray] = []
    boxes: list[np.ndarray] = []
    notes: list[str] = []
    skipped: list[str] = []
    for name, faces in ann.boxes.items():
        if limit is not None and len(images) >= limit:
            break
        try:
            image = load_image(root / name)
        except (ImageLoadError, OSError):
            skipped.append(name)
            continue
        names.append(name)
        images.append(image)
        boxes.append(np.asarray(faces, np.float64).reshape(-1, 4))
    if not images:
        raise AcfdError(f"--val-data {csv_path}: none of its images could be read from {root} (first: {next(iter(ann.boxes))})")
    if skipped:
        notes.append(f"{len(skipped)} image(s) missing or unreadable, skipped (first: {skipped[0]})")
    if ann.issues:
        notes.append(ann.issue_summary())
    return ValidationSet(names, images, boxes, f"{len(images)} images of {csv_path}", notes)


def detection_ap(runner: Any, val: ValidationSet, imgsz: tuple[int, int], batch: int = 4) -> float:
    """AP50 (the challenge metric) of ``runner`` through the full pipeline at one scale."""
    from acfd_deploy.eval.metric import evaluate
    from acfd_deploy.pipeline.detector import Detector, DetectorConfig

    detector = Detector(runner, DetectorConfig(scales=(tuple(imgsz),), batch_size=max(1, batch)))  # type: ignore[arg-type]
    found = detector.detect(val.images)
    gt = dict(zip(val.names, val.boxes))
    boxes = {n: d.boxes.astype(np.float64) for n, d in zip(val.names, found)}
    scores = {n: d.scores.astype(np.float64) for n, d in zip(val.names, found)}
    return evaluate(gt, boxes, scores).ap

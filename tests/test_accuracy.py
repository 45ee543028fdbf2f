"""INT8 judged by AP50 (acfd_deploy.verify.accuracy): the validation sets, the face-count
floor, and AP through the pipeline on the bundled demo model, judged by the rule chain."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from acfd_deploy.errors import AcfdError
from acfd_deploy.resources import demo_weights
from acfd_deploy.runtime.base import Runner
from acfd_deploy.verify.accuracy import (
    MIN_VAL_FACES,
    ValidationSet,
    check_enough_faces,
    detection_ap,
    read_validation_set,
    synthetic_validation_set,
)
from acfd_deploy.verify.compare import DetectionMatch, TensorDiff
from acfd_deploy.verify.rules import Evidence, Status, judge

DEMO = demo_weights()


def test_too_few_faces_are_refused_with_the_remedy() -> None:
    def faces(n: int) -> ValidationSet:
        return ValidationSet([f"i{i}" for i in range(n)], [np.zeros((8, 8, 3), np.uint8)] * n, [np.zeros((1, 4))] * n, "a set")

    check_enough_faces(faces(MIN_VAL_FACES), "add more")  # exactly enough
    with pytest.raises(AcfdError, match=f"at least {MIN_VAL_FACES} faces and a set has {MIN_VAL_FACES - 1} .*; add more"):
        check_enough_faces(faces(MIN_VAL_FACES - 1), "add more")


def test_synthetic_validation_set_is_deterministic_and_labelled() -> None:
    a = synthetic_validation_set(3, (150, 210), seed=7)
    b = synthetic_validation_set(3, (150, 210), seed=7)
    assert len(a) == 3 and a.names == b.names and a.num_faces >= 3
    for img, img_b, boxes in zip(a.images, b.images, a.boxes):
        assert img.shape == (150, 210, 3) and img.dtype == np.uint8 and np.array_equal(img, img_b)
        assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= 209).all() and (boxes[:, 3] <= 149).all()
    assert not np.array_equal(a.images[0], synthetic_validation_set(1, (150, 210), seed=8).images[0])
    with pytest.raises(AcfdError, match="at least one image"):
        synthetic_validation_set(0, (150, 210))


def _write_set(root: Path, names: list[str], present: list[str]) -> Path:
    from PIL import Image

    (root / "images").mkdir(parents=True)
    for name in present:
        Image.fromarray(np.full((140, 150, 3), 90, np.uint8)).save(root / "images" / name)
    csv = root / "val.csv"
    csv.write_text("".join(f"{n},10,12,60,70,face\n" for n in names))
    return csv


def test_read_validation_set_skips_missing_images_with_a_note(tmp_path: Path) -> None:
    csv = _write_set(tmp_path, ["a.png", "b.png", "c.png"], ["a.png", "c.png"])
    val = read_validation_set(csv, tmp_path / "images")
    assert val.names == ["a.png", "c.png"] and val.num_faces == 2
    assert val.boxes[0].tolist() == [[10, 12, 60, 70]]
    assert any("1 image(s) missing" in n for n in val.notes)
    assert len(read_validation_set(csv, tmp_path / "images", limit=1)) == 1


def test_read_validation_set_bad_input(tmp_path: Path) -> None:
    csv = _write_set(tmp_path, ["a.png"], [])
    with pytest.raises(AcfdError, match="none of its images"):
        read_validation_set(csv, tmp_path / "images")
    with pytest.raises(AcfdError, match="not a directory"):
        read_validation_set(csv, tmp_path / "nowhere")
    empty = tmp_path / "empty.csv"
    empty.write_text("image,x1,y1,x2,y2\n")
    with pytest.raises(AcfdError):
        read_validation_set(empty, tmp_path / "images")


class ShiftedBoxes(Runner):
    """Wraps a runner and moves every box by a third of its width: the scores, and so
    the detection ranking, stay; localisation breaks."""

    def __init__(self, inner) -> None:  # type: ignore[no-untyped-def]
        self.inner, self.name, self.precision = inner, "shifted", "fp32"

    def infer(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        boxes, scores = self.inner.infer(images)
        shift = (boxes[..., 2] - boxes[..., 0]) / 3
        return boxes + np.stack([shift, 0 * shift, shift, 0 * shift], axis=-1), scores


def test_demo_model_ap_and_a_broken_candidate_fails_the_rule() -> None:
    import acfd_deploy
    from acfd_deploy.runtime.torch_runner import TorchRunner

    model = acfd_deploy.reparameterize(acfd_deploy.load_model(DEMO))
    val = synthetic_validation_set(12, (320, 320))
    runner = TorchRunner(model)
    ap = detection_ap(runner, val, (320, 320))
    assert ap >= 0.5, ap  # the demo model detects the held-out synthetic faces
    broken = detection_ap(ShiftedBoxes(runner), val, (320, 320))
    assert broken < ap - 0.2
    # the scores are untouched, so every detection "matches" by score; boxes do not, and AP decides
    perfect = DetectionMatch(reference=500, matched=500, candidate=500, mean_iou=1.0, max_score_diff=0.0)
    verdict = judge(Evidence(TensorDiff(0.0, 0.0, 1000), perfect, reference_ap=ap, ap=broken), "int8")
    assert verdict.rule == "ap" and verdict.status is Status.FAIL and verdict.passed is False

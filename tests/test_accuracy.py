"""INT8 judged by AP50 (acfd_deploy.export.accuracy): the verdict as a pure function, the
validation sets, and AP through the pipeline on the bundled demo model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from acfd_deploy.errors import AcfdError
from acfd_deploy.export import accuracy
from acfd_deploy.export.accuracy import accuracy_verdict, detection_ap, read_validation_set, synthetic_validation_set

DEMO = Path(__file__).resolve().parents[1] / "models" / "acfd-tiny-demo.pth"


def test_verdict_ap_rule_at_its_boundary() -> None:
    ok = accuracy_verdict(0.80, 0.79, match_rate=0.5, min_match_rate=0.95)
    assert ok["rule"] == "ap" and ok["passed"] and ok["ap_drop"] == pytest.approx(0.01)
    bad = accuracy_verdict(0.80, 0.785, match_rate=1.0, min_match_rate=0.95)
    assert bad["rule"] == "ap" and not bad["passed"]  # a perfect match rate does not rescue a lost AP
    assert accuracy_verdict(0.5, 0.7, 0.0, 0.95)["passed"]  # a gain is no failure


def test_verdict_falls_back_to_match_rate_when_ap_cannot_judge() -> None:
    low = accuracy_verdict(accuracy.MIN_REFERENCE_AP - 0.01, 0.0, match_rate=0.96, min_match_rate=0.95)
    assert low["rule"] == "match" and low["passed"] and "do not detect enough" in low["why"]
    assert not accuracy_verdict(0.0, 0.0, match_rate=0.9, min_match_rate=0.95)["passed"]
    skipped = accuracy_verdict(0.02, None, match_rate=0.99, min_match_rate=0.95)  # not measured: cannot decide
    assert skipped["passed"] and skipped["ap"] is None and skipped["ap_drop"] is None
    with pytest.raises(ValueError, match="needs the candidate"):
        accuracy_verdict(0.8, None, match_rate=1.0, min_match_rate=0.95)


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


class ShiftedBoxes:
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
    assert not accuracy_verdict(ap, broken, match_rate=1.0, min_match_rate=0.95)["passed"]

"""Preprocessing, coordinate mapping across scales and aspect ratios, post-processing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from acfd_deploy.pipeline import MS_TEST_SCALES, Detector, DetectorConfig, PostprocessConfig, postprocess, preprocess_batch
from acfd_deploy.pipeline.postprocess import map_to_image, select_topk
from acfd_deploy.runtime.base import Runner
from acfd_deploy.runtime.torch_runner import TorchRunner

MEAN = (123.675, 116.28, 103.53)


class RedBoxRunner(Runner):
    """A fake network that 'detects' the one pure-red rectangle in each input: one box
    (tensor pixels, continuous edges) with score 0.9 and 30 decoys scoring 0.01."""

    name = "red-box"
    precision = "fp32"

    def __init__(self) -> None:
        self.shapes: list[tuple[int, ...]] = []

    def infer(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.shapes.append(images.shape)
        b = images.shape[0]
        boxes = np.tile(np.array([0, 0, 5, 5], np.float32), (b, 31, 1))
        scores = np.full((b, 31), 0.01, np.float32)
        for i in range(b):
            red = (images[i, 0] > 200) & (images[i, 1] < 60) & (images[i, 2] < 60)
            ys, xs = np.nonzero(red)
            boxes[i, 7] = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
            scores[i, 7] = 0.9
        return boxes, scores


def _image(h: int, w: int, box: tuple[int, int, int, int]) -> np.ndarray:
    img = np.full((h, w, 3), 90, np.uint8)
    x1, y1, x2, y2 = box
    img[y1 : y2 + 1, x1 : x2 + 1] = (255, 0, 0)
    return img


CASES = [  # (H, W, inclusive box) of different sizes and aspect ratios, one batch
    (160, 200, (40, 30, 99, 89)),
    (90, 300, (200, 10, 279, 49)),  # wide image, smaller than the minimum side
    (400, 120, (10, 250, 109, 379)),  # tall image
    (540, 960, (600, 100, 899, 299)),  # 16:9 frame, wide face
]


@pytest.mark.parametrize("keep_ratio", [False, True])
@pytest.mark.parametrize("scales", [((160, 200),), ((128, 128),), MS_TEST_SCALES], ids=["160x200", "128", "ms"])
def test_boxes_map_back_to_the_original_image(keep_ratio: bool, scales: tuple[tuple[int, int], ...]) -> None:
    runner = RedBoxRunner()
    detector = Detector(runner, DetectorConfig(scales=scales, keep_ratio=keep_ratio, batch_size=8))
    results = detector.detect([_image(h, w, box) for h, w, box in CASES])
    assert len(runner.shapes) == len(scales)  # one runner call per scale for the whole batch
    for (h, w, box), det in zip(CASES, results):
        assert (det.height, det.width) == (h, w)
        assert len(det) == 1, "the scales' copies of one face must merge in NMS; decoys (0.01) must go"
        assert det.scores[0] == pytest.approx(0.9)
        worst = min(min(th / h, tw / w) for th, tw in scales)
        tol = 2.0 / worst + 1.0  # a resampled edge may move by a tensor pixel or two
        expected = np.array([box[0], box[1], min(box[2] + 1, w - 1), min(box[3] + 1, h - 1)], np.float32)
        assert np.abs(det.boxes[0] - expected).max() <= tol, (det.boxes[0], expected)


def test_preprocess_contract_and_padding() -> None:
    imgs = [_image(90, 300, (0, 0, 9, 9)), _image(300, 90, (0, 0, 9, 9))]
    batch, plans = preprocess_batch(imgs, (100, 100), keep_ratio=True, min_size=125)
    assert batch.dtype == np.float32 and batch.shape == (2, 3, 125, 125)
    assert plans[0].scale_x == pytest.approx(1 / 3) and plans[0].scale_y == pytest.approx(30 / 90)
    # padding is the pixel mean, on the bottom/right only (content starts at 0, 0)
    assert batch[0, :, 124, 124].tolist() == pytest.approx(list(MEAN))
    assert batch[0, :, 40, 0].tolist() == pytest.approx(list(MEAN))  # below the 30-row content
    assert batch[0, 0, 0, 0] == 255.0
    stretched, plans = preprocess_batch(imgs, (130, 140), keep_ratio=False)
    assert stretched.shape == (2, 3, 130, 140)
    assert (plans[1].scale_x, plans[1].scale_y) == pytest.approx((140 / 90, 130 / 300))
    assert not np.isclose(stretched[1, 1], MEAN[1]).any()  # no padding when stretching


def test_select_topk_threshold_is_strict_and_capped() -> None:
    scores = torch.tensor([[0.08, 0.5, 0.081, 0.9, 0.2]])
    boxes = torch.arange(20, dtype=torch.float32).reshape(1, 5, 4)
    b, s, v = select_topk(boxes, scores, 0.08, 3)
    assert s[0].tolist() == pytest.approx([0.9, 0.5, 0.2]) and v.all()
    assert b[0, 0].tolist() == boxes[0, 3].tolist()
    b, s, v = select_topk(boxes, scores, 0.08, 10)
    assert v.sum().item() == 4  # 0.08 itself is not "> 0.08"


def test_map_to_image_divides_and_clips_per_image() -> None:
    boxes = torch.tensor([[[10.0, 20.0, 50.0, 60.0]], [[-5.0, 10.0, 500.0, 20.0]]])
    scale = torch.tensor([[2.0, 4.0], [1.0, 1.0]])  # (sx, sy)
    hw = torch.tensor([[100.0, 100.0], [50.0, 80.0]])
    out = map_to_image(boxes, scale, hw)
    assert out[0, 0].tolist() == pytest.approx([5.0, 5.0, 25.0, 15.0])
    assert out[1, 0].tolist() == pytest.approx([0.0, 10.0, 79.0, 20.0])


def test_postprocess_caps_and_merges_scales() -> None:
    rng = np.random.default_rng(0)
    n = 3000
    xy = rng.uniform(0, 900, size=(2, n, 2)).astype(np.float32)
    boxes = np.concatenate([xy, xy + 30], axis=-1)
    scores = rng.random((2, n)).astype(np.float32)
    one = np.ones((2, 2), np.float32)
    hw = np.array([[1000, 1000], [1000, 1000]], np.float32)
    out = postprocess([(boxes, scores, one), (boxes, scores, one)], hw, PostprocessConfig())
    for _b, s in out:
        assert len(s) == 100  # top 100 after NMS
        assert np.all(np.diff(s) <= 0)
        assert s.min() > 0.08
    # the same boxes from two scales are duplicates: NMS keeps each once
    single = postprocess([(boxes, scores, one)], hw, PostprocessConfig())
    assert np.allclose(out[0][1], single[0][1])


def test_postprocess_drops_boxes_that_clip_to_nothing() -> None:
    # the best box lies wholly right of a 100-pixel-wide image, the second is 0.5 pixels
    # thin after clipping: neither is a detection; the third is a real face
    boxes = np.array([[[120, 10, 180, 60], [99.5, 10, 140, 60], [10, 10, 40, 50]]], np.float32)
    scores = np.array([[0.99, 0.95, 0.6]], np.float32)
    hw = np.array([[100, 101]], np.float32)
    ((kept, kept_scores),) = postprocess([(boxes, scores, np.ones((1, 2), np.float32))], hw)
    assert kept.tolist() == [[10, 10, 40, 50]] and kept_scores.tolist() == pytest.approx([0.6])
    ((all_boxes, _),) = postprocess([(boxes, scores, np.ones((1, 2), np.float32))], hw, PostprocessConfig(min_box_size=0.0))
    assert len(all_boxes) == 3


def test_postprocess_torch_and_numpy_inputs_agree() -> None:
    rng = np.random.default_rng(1)
    xy = rng.uniform(0, 200, size=(3, 500, 2)).astype(np.float32)
    boxes = np.concatenate([xy, xy + rng.uniform(5, 60, size=(3, 500, 2)).astype(np.float32)], axis=-1)
    scores = rng.random((3, 500)).astype(np.float32)
    scale = np.array([[1.0, 1.0], [0.5, 2.0], [2.0, 0.5]], np.float32)
    hw = np.array([[250, 250], [400, 100], [100, 400]], np.float32)
    a = postprocess([(boxes, scores, scale)], hw)
    b = postprocess([(torch.from_numpy(boxes), torch.from_numpy(scores), torch.from_numpy(scale))], torch.from_numpy(hw))
    for (ba, sa), (bb, sb) in zip(a, b):
        assert np.array_equal(ba, bb) and np.array_equal(sa, sb)


class NumpyOnly(Runner):
    """Hides ``infer_torch`` so the Detector takes the numpy path (like ONNX Runtime)."""

    def __init__(self, inner: TorchRunner) -> None:
        self.inner, self.name, self.precision = inner, "numpy", "fp32"

    def infer(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.inner.infer(images)


def test_torch_runner_and_numpy_runner_paths_agree(tiny_model: torch.nn.Module) -> None:
    import acfd_deploy

    runner = TorchRunner(acfd_deploy.reparameterize(tiny_model))
    rng = np.random.default_rng(0)
    imgs = [rng.integers(0, 255, size=(h, w, 3), dtype=np.uint8) for h, w in ((160, 200), (130, 260))]
    cfg = DetectorConfig(scales=((160, 200), (128, 160)))
    a = Detector(runner, cfg).detect(imgs)
    b = Detector(NumpyOnly(runner), cfg, pixel_mean=MEAN, min_size=125).detect(imgs)
    assert sum(len(d) for d in a) > 0
    for da, db in zip(a, b):
        assert np.allclose(da.boxes, db.boxes, atol=1e-4) and np.allclose(da.scores, db.scores, atol=1e-6)
        assert len(da) <= 100 and (da.boxes[:, 2] <= da.width - 1).all() and (da.boxes[:, 3] <= da.height - 1).all()


def test_detector_config_validation() -> None:
    from acfd_deploy.errors import AcfdError

    with pytest.raises(AcfdError):
        DetectorConfig(scales=())
    with pytest.raises(AcfdError):
        DetectorConfig(batch_size=0)


def test_draw_detections_respects_conf() -> None:
    from acfd_deploy.pipeline import draw_detections

    image = np.zeros((120, 160, 3), np.uint8)
    boxes = np.array([[20, 60, 60, 100], [100, 60, 140, 100]], np.float32)
    out = np.asarray(draw_detections(image, boxes, np.array([0.9, 0.3]), conf=0.5))
    assert out.shape == (120, 160, 3)
    assert out[80, 20].tolist() == [255, 40, 40]  # left edge of the drawn box
    assert out[80, 100].tolist() == [0, 0, 0]  # the 0.3 box is below --conf
    assert (out[40:60, 20:60] != 0).any()  # its score label sits above the box

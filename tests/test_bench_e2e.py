"""acfd-bench on an end-to-end graph: the timed call is the graph's whole call on the
uint8 scenes a decoder gives, and --ms-test makes one graph call per batch of decoded
frames (the graph runs its own scales; the table labels them)."""

from __future__ import annotations

import numpy as np

from acfd_deploy.bench.harness import BenchPlan, _ms_test_call, _timed_call
from acfd_deploy.pipeline.detector import MS_TEST_SCALES
from acfd_deploy.runtime.base import Runner
from acfd_deploy.runtime.end2end import EndToEndInfo


class Recording(Runner):
    """An end-to-end runner that records what it is given."""

    outputs = "detections"

    def __init__(self, scales: tuple[tuple[int, int], ...]) -> None:
        self.name, self.precision, self.min_size = "recording-e2e", "fp32", 1
        self.end2end = EndToEndInfo(scales=scales, keep_ratio=False)
        self.seen: list[np.ndarray] = []

    def infer_detections(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        self.seen.append(images)
        b = len(images)
        return np.zeros((b, 1), np.int32), np.zeros((b, 100, 4), np.float32), np.zeros((b, 100), np.float32)


def test_timed_call_gives_an_e2e_graph_decoded_pixels_of_the_same_scenes() -> None:
    from acfd_deploy.data.synth import synthetic_batch

    runner = Recording(((320, 430),))
    planes = synthetic_batch(2, 200, 270)
    _timed_call(runner, planes)()
    (pixels,) = runner.seen
    assert pixels.dtype == np.uint8 and pixels.shape == (2, 200, 270, 3) and pixels.flags.c_contiguous
    np.testing.assert_allclose(pixels.transpose(0, 3, 1, 2), planes, atol=0.5)  # the same scenes, rounded


def test_ms_test_makes_one_graph_call_per_batch_of_decoded_frames() -> None:
    runner = Recording(MS_TEST_SCALES)
    from acfd_deploy.bench.harness import source_jpeg

    _ms_test_call(runner, source_jpeg(BenchPlan().source), 2)()
    assert [p.shape for p in runner.seen] == [(2, 1080, 1920, 3)]  # one graph call for the batch, the source's size

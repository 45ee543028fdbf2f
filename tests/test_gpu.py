"""CUDA paths: skipped without a GPU, real where one exists."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import acfd_deploy
from acfd_deploy.calibrate import smooth_random_images
from acfd_deploy.runtime.torch_runner import TorchRunner
from acfd_deploy.verify.compare import detection_match, tensor_diff
from acfd_deploy.verify.rules import FP16_MIN_MATCH

pytestmark = pytest.mark.gpu


def _ref(model: torch.nn.Module, images: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    with torch.no_grad():
        boxes, scores = model(images)
    return boxes.numpy(), scores.numpy()


@pytest.mark.parametrize("size", [(480, 645), (333, 517)])
def test_cuda_fp32_and_fp16_parity(paper_model: torch.nn.Module, size: tuple[int, int]) -> None:
    images = smooth_random_images(2, *size, seed=21)
    ref = _ref(paper_model, images)
    folded = acfd_deploy.reparameterize(paper_model)
    fp32 = TorchRunner(folded, "cuda", "fp32").infer(images.numpy())
    diff = tensor_diff(ref, fp32)
    # cuDNN may pick TF32 kernels on Ampere and newer unless disabled; PyTorch's default
    # for convolutions is TF32 on, so fp32 on CUDA is held to the detection level too
    assert diff.score_abs < 1e-2, diff
    match = detection_match(ref, fp32)
    assert match.reference >= 100 and match.rate is not None and match.rate >= 0.99, match
    fp16 = TorchRunner(acfd_deploy.reparameterize(paper_model), "cuda", "fp16").infer(images.numpy())
    match = detection_match(ref, fp16)
    assert match.reference >= 100 and match.rate is not None and match.rate >= FP16_MIN_MATCH, match


def test_cuda_graphs_replay_matches_eager(tiny_model: torch.nn.Module) -> None:
    folded = acfd_deploy.reparameterize(tiny_model)
    eager = TorchRunner(folded, "cuda", "fp16")
    graphed = TorchRunner(acfd_deploy.reparameterize(tiny_model), "cuda", "fp16", cuda_graphs=True)
    for seed in (1, 2):  # the second call replays the captured graph with new data
        images = smooth_random_images(3, 160, 224, seed=seed).numpy()
        (b1, s1), (b2, s2) = eager.infer(images), graphed.infer(images)
        assert np.allclose(s1, s2, atol=1e-3) and np.allclose(b1, b2, rtol=1e-3, atol=0.5)


def test_demo_model_keeps_its_ap_on_cuda_in_fp32_and_fp16() -> None:
    """Trained weights through the whole pipeline on the GPU: AP50 within a point of the CPU."""
    from acfd_deploy.resources import demo_weights
    from acfd_deploy.verify.accuracy import detection_ap, synthetic_validation_set
    from acfd_deploy.verify.rules import MAX_AP_DROP

    demo = demo_weights()
    val = synthetic_validation_set(32, (320, 352))
    ref = detection_ap(TorchRunner(acfd_deploy.reparameterize(acfd_deploy.load_model(demo))), val, (320, 352))
    assert ref >= 0.5
    for precision in ("fp32", "fp16"):
        runner = TorchRunner(acfd_deploy.reparameterize(acfd_deploy.load_model(demo)), "cuda", precision)
        assert detection_ap(runner, val, (320, 352)) >= ref - MAX_AP_DROP, precision


def test_torch_runner_on_cuda_leaves_the_callers_model_on_the_cpu(tiny_model: torch.nn.Module) -> None:
    folded = acfd_deploy.reparameterize(tiny_model)
    before = [p.data_ptr() for p in folded.parameters()]
    runner = TorchRunner(folded, "cuda:0", "fp16")
    assert runner.model is not folded and next(runner.model.parameters()).device.type == "cuda"
    assert all(p.device.type == "cpu" and p.dtype == torch.float32 for p in folded.parameters())
    assert [p.data_ptr() for p in folded.parameters()] == before


def test_device_index_out_of_range_is_bad_input() -> None:
    from acfd_deploy.errors import AcfdError
    from acfd_deploy.runtime.device import resolve_device

    n = torch.cuda.device_count()
    assert str(resolve_device("cuda")) == "cuda:0" and str(resolve_device("auto")) == "cuda:0"
    with pytest.raises(AcfdError, match=f"only {n} CUDA device"):
        resolve_device(f"cuda:{n}")

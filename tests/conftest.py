from __future__ import annotations

import importlib.util

import pytest
import torch

import acfd_deploy
from acfd_deploy.calibrate import well_conditioned

torch.set_num_threads(max(1, torch.get_num_threads()))


def _has_cuda() -> bool:
    return torch.cuda.is_available()


def _has_tensorrt() -> bool:
    return importlib.util.find_spec("tensorrt") is not None and _has_cuda()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device (none found)")
    skip_trt = pytest.mark.skip(reason="needs TensorRT and a CUDA device (pip install 'acfd-deploy[tensorrt]' on a GPU machine)")
    for item in items:
        # markers, not keywords: a test parametrized with the value "gpu" needs no GPU
        if item.get_closest_marker("tensorrt") is not None and not _has_tensorrt():
            item.add_marker(skip_trt)
        elif item.get_closest_marker("gpu") is not None and not _has_cuda():
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def tiny_model() -> torch.nn.Module:
    """acfd-tiny with calibrated BN statistics (well-conditioned, like trained weights)."""
    torch.manual_seed(0)
    return well_conditioned(acfd_deploy.build_model("acfd-tiny"), seed=0)


@pytest.fixture(scope="session")
def paper_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return well_conditioned(acfd_deploy.build_model("acfd-vovnetv3-51"), seed=0)

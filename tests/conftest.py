from __future__ import annotations

import importlib.util
import os

# pytest-xdist workers share the cores: each gets its share of threads, for PyTorch here and
# in the subprocesses tests start (OMP_NUM_THREADS), and for ONNX Runtime and OpenVINO
# (ACFD_NUM_THREADS). Thread pools larger than the cores they share spin against each other
# (measured: a 3 s training test took 100 s in the full suite).
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    _share = str(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))
    for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "ACFD_NUM_THREADS"):
        os.environ.setdefault(_name, _share)

import pytest  # noqa: E402
import torch  # noqa: E402

import acfd_deploy  # noqa: E402
from acfd_deploy.calibrate import well_conditioned  # noqa: E402

torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", 0)) or torch.get_num_threads())


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

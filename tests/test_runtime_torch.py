"""The PyTorch runner never changes the caller's model: no move, no cast, no switch to eval
mode; a runner that needs another device, dtype or mode works on its own copy."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import acfd_deploy
from acfd_deploy.errors import AcfdError
from acfd_deploy.runtime.torch_runner import TorchRunner
from acfd_deploy.verify.inputs import parity_inputs


def _state(model: torch.nn.Module) -> tuple[list[tuple[str, int, torch.dtype, str]], dict[str, bool]]:
    """Every tensor's name, storage, dtype and device, and every module's mode."""
    tensors = [(n, t.data_ptr(), t.dtype, str(t.device)) for n, t in [*model.named_parameters(), *model.named_buffers()]]
    return tensors, {n: m.training for n, m in model.named_modules()}


def test_a_model_in_train_mode_stays_in_train_mode(tiny_model: torch.nn.Module) -> None:
    model = copy.deepcopy(tiny_model).train()
    before = _state(model)
    values = {k: v.clone() for k, v in model.state_dict().items()}
    runner = TorchRunner(model)
    assert runner.model is not model and not runner.model.training  # the runner evaluates its own copy
    images = parity_inputs((160, 192), count=1, batch=1)[0]
    boxes, scores = runner.infer(images)
    assert _state(model) == before and model.training
    # BatchNorm running statistics untouched: the runner's forward passes ran in eval mode on the copy
    assert all(torch.equal(values[k], v) for k, v in model.state_dict().items())
    with torch.no_grad():
        ref_boxes, ref_scores = copy.deepcopy(model).eval()(torch.from_numpy(images))
    np.testing.assert_allclose(scores, ref_scores.numpy(), rtol=0, atol=1e-6)


def test_a_float64_model_stays_float64(tiny_model: torch.nn.Module) -> None:
    model = copy.deepcopy(tiny_model).double().eval()
    before = _state(model)
    runner = TorchRunner(model)
    assert runner.model is not model and next(runner.model.parameters()).dtype == torch.float32
    boxes, scores = runner.infer(parity_inputs((160, 192), count=1, batch=1)[0])
    assert boxes.dtype == np.float32 and scores.dtype == np.float32
    assert _state(model) == before and all(p.dtype == torch.float64 for p in model.parameters())


def test_a_ready_model_is_used_as_it_is(tiny_model: torch.nn.Module) -> None:
    """Already in eval mode, on the device, in the dtype: no copy is made (a deploy graph of
    the paper's size is not duplicated for nothing)."""
    folded = acfd_deploy.reparameterize(tiny_model)
    before = _state(folded)
    assert TorchRunner(folded).model is folded
    assert _state(folded) == before


def test_the_training_graph_fixture_is_not_changed_by_an_export_reference(tiny_model: torch.nn.Module) -> None:
    """The exporter wraps the caller's training graph as its reference: the shared session
    fixture must come out exactly as it went in."""
    before = _state(tiny_model)
    TorchRunner(tiny_model, name="reference").infer(parity_inputs((160, 192), count=1, batch=1)[0])
    assert _state(tiny_model) == before


def test_torch_runner_refuses_what_it_cannot_do_on_the_cpu(tiny_model: torch.nn.Module) -> None:
    with pytest.raises(AcfdError, match="fp16 in PyTorch needs a CUDA device"):
        TorchRunner(tiny_model, "cpu", "fp16")
    with pytest.raises(AcfdError, match="supports fp32 and fp16, not 'int8'"):
        TorchRunner(tiny_model, "cpu", "int8")
    with pytest.raises(AcfdError, match="--cuda-graphs needs a CUDA device"):
        TorchRunner(tiny_model, "cpu", cuda_graphs=True)


def test_the_runner_contract_comes_from_the_model() -> None:
    """A config with fewer pyramid levels takes smaller images and another pixel mean: the
    runner says so (min_size, pixel_mean), and the Detector pads to what the runner says,
    not to the six-level default. device is the resolved Device; torch gets torch_device."""
    import dataclasses

    from acfd_deploy.model.anchors import min_input_size
    from acfd_deploy.pipeline.detector import Detector
    from acfd_deploy.runtime.base import DEFAULT_MIN_SIZE
    from acfd_deploy.runtime.device import Device

    base = acfd_deploy.get_config("acfd-tiny")
    config = dataclasses.replace(base, name="acfd-tiny-4", stages=base.stages[:4], pixel_mean=(100.0, 110.0, 120.0))
    runner = TorchRunner(acfd_deploy.build_model(config), device="cpu")
    assert runner.min_size == min_input_size(config) < DEFAULT_MIN_SIZE
    assert runner.pixel_mean == (100.0, 110.0, 120.0)
    assert runner.device == Device("cpu") and runner.torch_device == torch.device("cpu")
    detector = Detector(runner)
    assert (detector.min_size, detector.pixel_mean) == (runner.min_size, runner.pixel_mean)
    # a bare module (no ACFD config) keeps the contract's defaults
    assert TorchRunner(torch.nn.Conv2d(3, 4, 3)).min_size == DEFAULT_MIN_SIZE

"""PyTorch runner: the training graph or the folded graph, CPU or CUDA, fp32 or fp16,
optionally captured in CUDA graphs or compiled with ``torch.compile``.

The caller's module is never moved, cast or switched to eval mode: a runner that needs
another device, dtype or mode works on its own copy, so wrapping a model (the exporter
wraps the training graph it is about to fold) cannot change what the caller holds."""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from acfd_deploy.configs import ModelConfig
from acfd_deploy.errors import AcfdError
from acfd_deploy.model.anchors import min_input_size
from acfd_deploy.runtime.base import Runner
from acfd_deploy.runtime.device import Device, resolve_device

Outputs = tuple[torch.Tensor, torch.Tensor]


def _ready(model: nn.Module, device: torch.device, dtype: torch.dtype) -> nn.Module:
    """``model`` itself when it is already in eval mode on ``device`` in ``dtype``, else a
    copy that is (the caller's module stays as it was)."""
    tensors = [*model.parameters(), *model.buffers()]
    floating = [t for t in tensors if t.is_floating_point()]
    on_device = all(t.device == device for t in tensors)
    in_dtype = all(t.dtype == dtype for t in floating)
    in_eval = not any(m.training for m in model.modules())
    if on_device and in_dtype and in_eval:
        return model
    return copy.deepcopy(model).eval().to(device, dtype)


class TorchRunner(Runner):
    accepts_torch = True

    def __init__(
        self,
        model: nn.Module,
        device: str | torch.device | Device = "cpu",
        precision: str = "fp32",
        name: str | None = None,
        cuda_graphs: bool = False,
        compile: bool = False,
    ) -> None:
        if precision not in ("fp32", "fp16"):
            raise AcfdError(f"the PyTorch runner supports fp32 and fp16, not {precision!r}")
        if isinstance(device, torch.device):
            device = str(device)
        self.device = resolve_device(device)
        # the contract's device is a Device; torch calls take this one
        self.torch_device = torch.device(self.device.torch())
        if precision == "fp16" and not self.device.is_cuda:
            raise AcfdError("fp16 in PyTorch needs a CUDA device (CPU half-precision convolutions are slow and not what ships)")
        if cuda_graphs and not self.device.is_cuda:
            raise AcfdError("--cuda-graphs needs a CUDA device")
        self.dtype = torch.float16 if precision == "fp16" else torch.float32
        self.model = _ready(model, self.torch_device, self.dtype)
        config = getattr(self.model, "config", None)  # an ACFD network; a bare nn.Module keeps the defaults
        if isinstance(config, ModelConfig):
            self.min_size = min_input_size(config)
            self.pixel_mean = tuple(float(v) for v in config.pixel_mean)  # type: ignore[assignment]
        self.precision = precision
        self.name = name or f"torch-{self.device.kind}"
        self.cuda_graphs = cuda_graphs
        self._forward: Callable[[torch.Tensor], Outputs] = self.model
        if compile:
            # CUDA graphs are ours when asked for, so the compiled code must not capture its own
            mode = "max-autotune-no-cudagraphs" if self.device.is_cuda else "default"
            self._forward = torch.compile(self.model, mode=mode, dynamic=False)
        self._graphs: dict[tuple[int, ...], tuple[torch.cuda.CUDAGraph, torch.Tensor, Outputs]] = {}

    @torch.inference_mode()
    def infer_torch(self, images: torch.Tensor) -> Outputs:
        """The same as :meth:`infer` on tensors (no host copies when already on the device)."""
        x = images.to(self.torch_device, self.dtype, non_blocking=True)
        if self.cuda_graphs:
            boxes, scores = self._replay(x)
            return boxes.clone(), scores.clone()
        boxes, scores = self._forward(x)
        return boxes.float(), scores.float()

    def infer(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        boxes, scores = self.infer_torch(torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)))
        return boxes.cpu().numpy(), scores.cpu().numpy()

    def _replay(self, x: torch.Tensor) -> Outputs:
        """One CUDA graph per input shape, captured on first use after a warm-up on a side
        stream (as the PyTorch docs prescribe); later calls copy the input in and replay."""
        key = tuple(x.shape)
        if key not in self._graphs:
            static_in = x.clone()
            stream = torch.cuda.Stream(self.torch_device)
            stream.wait_stream(torch.cuda.current_stream(self.torch_device))
            with torch.cuda.stream(stream):
                for _ in range(3):
                    self._forward(static_in)
            torch.cuda.current_stream(self.torch_device).wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                boxes, scores = self._forward(static_in)
                static_out = (boxes.float(), scores.float())
            self._graphs[key] = (graph, static_in, static_out)
        graph, static_in, static_out = self._graphs[key]
        static_in.copy_(x)
        graph.replay()
        return static_out


def checkpoint_runner(
    path: str | os.PathLike[str], device: str | Device = "auto", precision: str = "fp32", name: str | None = None
) -> TorchRunner:
    """A checkpoint as it ships: loaded safely, folded (a deploy checkpoint is already),
    run in PyTorch. The registry's factory for ``.pth``/``.pt``/``.safetensors``."""
    from acfd_deploy import load_model, reparameterize

    dev = resolve_device(device)
    label = name or f"torch-{dev}:{Path(path).name}"
    return TorchRunner(reparameterize(load_model(path)), device=dev, precision=precision, name=label)


def checkpoint_precision(path: str | os.PathLike[str]) -> str:
    """A checkpoint's precision, for listings: ``fp32`` (checkpoints hold fp32 weights; the
    runner casts to fp16 only when asked)."""
    return "fp32"

"""PyTorch runner: the training graph or the folded graph, CPU or CUDA, fp32 or fp16,
optionally captured in CUDA graphs or compiled with ``torch.compile``."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from acfd_deploy.errors import AcfdError

Outputs = tuple[torch.Tensor, torch.Tensor]


class TorchRunner:
    def __init__(
        self,
        model: nn.Module,
        device: str | torch.device = "cpu",
        precision: str = "fp32",
        name: str | None = None,
        cuda_graphs: bool = False,
        compile: bool = False,
    ) -> None:
        if precision not in ("fp32", "fp16"):
            raise AcfdError(f"the PyTorch runner supports fp32 and fp16, not {precision!r}")
        self.device = torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise AcfdError("the PyTorch runner was asked for CUDA, but torch sees no CUDA device")
        if precision == "fp16" and self.device.type != "cuda":
            raise AcfdError("fp16 in PyTorch needs a CUDA device (CPU half-precision convolutions are slow and not what ships)")
        if cuda_graphs and self.device.type != "cuda":
            raise AcfdError("--cuda-graphs needs a CUDA device")
        self.dtype = torch.float16 if precision == "fp16" else torch.float32
        self.model = model.eval().to(self.device, self.dtype)
        self.precision = precision
        self.name = name or f"torch-{self.device.type}"
        self.cuda_graphs = cuda_graphs
        self._forward: Callable[[torch.Tensor], Outputs] = self.model
        if compile:
            # CUDA graphs are ours when asked for, so the compiled code must not capture its own
            mode = "max-autotune-no-cudagraphs" if self.device.type == "cuda" else "default"
            self._forward = torch.compile(self.model, mode=mode, dynamic=False)
        self._graphs: dict[tuple[int, ...], tuple[torch.cuda.CUDAGraph, torch.Tensor, Outputs]] = {}

    @torch.inference_mode()
    def infer_torch(self, images: torch.Tensor) -> Outputs:
        """The same as :meth:`infer` on tensors (no host copies when already on the device)."""
        x = images.to(self.device, self.dtype, non_blocking=True)
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
            stream = torch.cuda.Stream(self.device)
            stream.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(stream):
                for _ in range(3):
                    self._forward(static_in)
            torch.cuda.current_stream(self.device).wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                boxes, scores = self._forward(static_in)
                static_out = (boxes.float(), scores.float())
            self._graphs[key] = (graph, static_in, static_out)
        graph, static_in, static_out = self._graphs[key]
        static_in.copy_(x)
        graph.replay()
        return static_out

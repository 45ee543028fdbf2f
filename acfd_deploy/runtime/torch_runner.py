"""PyTorch runner: the training graph or the folded graph, CPU or CUDA, fp32 or fp16."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from acfd_deploy.errors import AcfdError


class TorchRunner:
    def __init__(self, model: nn.Module, device: str | torch.device = "cpu", precision: str = "fp32", name: str | None = None) -> None:
        if precision not in ("fp32", "fp16"):
            raise AcfdError(f"the PyTorch runner supports fp32 and fp16, not {precision!r}")
        self.device = torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise AcfdError("the PyTorch runner was asked for CUDA, but torch sees no CUDA device")
        if precision == "fp16" and self.device.type != "cuda":
            raise AcfdError("fp16 in PyTorch needs a CUDA device (CPU half-precision convolutions are slow and not what ships)")
        self.dtype = torch.float16 if precision == "fp16" else torch.float32
        self.model = model.eval().to(self.device, self.dtype)
        self.precision = precision
        self.name = name or f"torch-{self.device.type}"

    @torch.inference_mode()
    def infer_torch(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The same as :meth:`infer` on tensors already on the device (no host copies)."""
        boxes, scores = self.model(images.to(self.device, self.dtype))
        return boxes.float(), scores.float()

    def infer(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        boxes, scores = self.infer_torch(torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)))
        return boxes.cpu().numpy(), scores.cpu().numpy()

"""The generic reparameterization pass (RepVGG / MobileOne style).

Blocks know how to fold themselves (``reparameterize()``); this pass only walks a *copy*
of the model and swaps each such block for what it returns. The input model is never
touched, and folding a folded model changes nothing, because nothing foldable is left.
"""

from __future__ import annotations

import copy
from typing import Protocol, TypeVar, cast, runtime_checkable

import torch
from torch import nn

M = TypeVar("M", bound=nn.Module)


@runtime_checkable
class Reparameterizable(Protocol):
    def reparameterize(self) -> nn.Module: ...


@torch.no_grad()
def reparameterize(model: M) -> M:
    """A new module, in eval mode, computing what ``model.eval()`` computes, with every
    BatchNorm folded (Eq. 4), every ACB merged into one 3x3 conv and BiFPN fusion weights
    turned into constants. A foldable block passed itself (an ACB) is folded too: the
    result is then its folded form (a conv), not a module of the same type."""
    was_training = model.training
    model.eval()  # so the copy folds running statistics, not batch statistics
    try:
        folded: nn.Module = copy.deepcopy(model)
    finally:
        model.train(was_training)
    if isinstance(folded, Reparameterizable):
        folded = folded.reparameterize()
    _fold_children(folded)
    folded.eval()
    for p in folded.parameters():
        p.requires_grad_(False)
    return cast(M, folded)


def _fold_children(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, Reparameterizable):
            setattr(module, name, child.reparameterize())
        else:
            _fold_children(child)


def is_reparameterized(model: nn.Module) -> bool:
    """True when nothing in ``model`` is left to fold (no BN, no ACB, no learned fusion)."""
    return not any(isinstance(m, (Reparameterizable, nn.modules.batchnorm._BatchNorm)) for m in model.modules())

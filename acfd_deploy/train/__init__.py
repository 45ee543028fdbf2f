"""The paper's training method: DAM (Algorithm 1), the MBC loss (Eq. 2, 3), the
augmentation of Sec. 4.1, and a trainer (SGD, warm-up, step decay, DDP)."""

from acfd_deploy.train.dam import COMPENSATED, MATCHED, NEGATIVE, dynamic_anchor_match
from acfd_deploy.train.loss import LossConfig, mbc_loss

__all__ = ["COMPENSATED", "MATCHED", "NEGATIVE", "LossConfig", "dynamic_anchor_match", "mbc_loss"]

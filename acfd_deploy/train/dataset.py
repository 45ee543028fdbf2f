"""Training data from iCartoonFace CSVs (or the synthetic set written in that format)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from acfd_deploy.data import read_annotations
from acfd_deploy.errors import AcfdError
from acfd_deploy.fileio import require_file
from acfd_deploy.pipeline.io import load_image
from acfd_deploy.train.augment import AugmentConfig, augment


class FaceDataset(Dataset):
    """Images named in a CSV, with their face boxes; augmented when ``augment_config``
    is given. Each item is ``(image float32 [3, H, W] 0..255, boxes float32 [K, 4])``."""

    def __init__(
        self, csv_path: str | os.PathLike[str], images_dir: str | os.PathLike[str], augment_config: AugmentConfig | None, seed: int = 0
    ) -> None:
        csv_path, images_dir = Path(csv_path), Path(images_dir)
        require_file(csv_path, "annotation CSV")
        if not images_dir.is_dir():
            raise AcfdError(f"image folder not found: {images_dir}")
        ann = read_annotations(csv_path)
        if ann.issues:
            import warnings

            warnings.warn(ann.issue_summary(), stacklevel=2)
        if not ann.boxes:
            raise AcfdError(f"{csv_path} has no usable rows")
        missing = [name for name in ann.boxes if not (images_dir / name).is_file()]
        if missing:
            raise AcfdError(
                f"{len(missing)} of {len(ann.boxes)} images named in {csv_path} are missing from {images_dir} (first: {missing[0]})"
            )
        self.items = [(images_dir / name, np.asarray(b, dtype=np.float64).reshape(-1, 4)) for name, b in ann.boxes.items()]
        self.augment_config = augment_config
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Different augmentation each epoch, yet reproducible for a seed."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        path, boxes = self.items[index]
        image = load_image(path)
        if self.augment_config is not None:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            image, boxes = augment(image, boxes, rng, self.augment_config)
        return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float(), torch.as_tensor(boxes, dtype=torch.float32)


def collate(batch: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, list[torch.Tensor]]:
    return torch.stack([img for img, _ in batch]), [boxes for _, boxes in batch]

"""The training loop: SGD with warm-up and step decay, AMP on GPU, DDP under torchrun,
validation AP with the challenge metric each epoch, resumable checkpoints, a CSV log.

Started by ``torchrun --nproc-per-node N -m acfd_deploy.cli.train ...`` the same code runs
data-parallel (NCCL on GPUs, gloo on CPUs); rank 0 alone validates, logs and saves.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler

from acfd_deploy.checkpoint import read_checkpoint, save_checkpoint
from acfd_deploy.configs import resolve_config
from acfd_deploy.errors import AcfdError
from acfd_deploy.fileio import atomic_path
from acfd_deploy.model.detector import build_model
from acfd_deploy.train.augment import AugmentConfig
from acfd_deploy.train.dataset import FaceDataset, collate
from acfd_deploy.train.loss import LossConfig, mbc_loss
from acfd_deploy.train.plot import plot_history, read_log
from acfd_deploy.train.schedule import learning_rate, paper_milestones

LOG_FIELDS = ["epoch", "iterations", "lr", "loss", "cls", "reg", "matched", "compensated", "val_ap", "seconds"]


@dataclass
class TrainConfig:
    data: str
    images: str
    val_data: str | None = None
    val_images: str | None = None
    config: str = "acfd-tiny"
    epochs: int = 30
    batch: int = 16
    imgsz: int | tuple[int, int] = 640  # training input size, H W (one number: square)
    device: str = "auto"  # auto, cpu, cuda, cuda:N (under torchrun: each process's LOCAL_RANK GPU)
    lr: float = 0.01  # the paper's 0.04 at batch 64, scaled linearly to batch 16
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_iters: int = 1000
    milestones: tuple[int, ...] = ()  # empty: the paper's 2/3, 5/6, 14/15 of the epochs
    workers: int = 2
    seed: int = 0
    out: str = "runs/train"
    val_imgsz: tuple[int, int] | None = None
    amp: bool = True
    # mmdetection's RetinaNet value. From a Kaiming init the gradient norm starts near 800
    # (most of it in the stem); 10 kept SGD stable but starved the head, no clip diverged.
    clip_grad_norm: float = 35.0
    max_iters_per_epoch: int | None = None
    loss: LossConfig = field(default_factory=LossConfig)

    def resolved_milestones(self) -> tuple[int, ...]:
        return self.milestones or paper_milestones(self.epochs)


def _is_main() -> bool:
    return not dist.is_initialized() or dist.get_rank() == 0


def _setup_distributed(device: str = "auto") -> torch.device:
    """The process's device: ``--device`` (auto: CUDA where present), one GPU per process
    (``LOCAL_RANK``) under torchrun; joins the process group when there is one."""
    from acfd_deploy.runtime.device import resolve_device

    chosen = resolve_device(device)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if chosen.is_cuda else "gloo")
    if chosen.is_cuda:
        index = int(os.environ["LOCAL_RANK"]) if "LOCAL_RANK" in os.environ else chosen.index
        torch.cuda.set_device(index)
        return torch.device("cuda", index)
    return torch.device("cpu")


def _state_for_resume(optimizer: torch.optim.Optimizer, epoch: int, iteration: int, best_ap: float, cfg: TrainConfig) -> dict[str, Any]:
    return {
        "optimizer": optimizer.state_dict(),
        "epoch": epoch,
        "iteration": iteration,
        "best_ap": best_ap,
        "train_config": json_safe(dataclasses.asdict(cfg)),
    }


def json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


RUN_FILES = ("log.csv", "last.pth", "best.pth")


def check_out(out: Path, resume: str | None, overwrite: bool) -> None:
    """A folder that already holds a run is continued only with ``--resume`` or started
    over only with ``--overwrite``; never silently appended to (its log would mix runs)."""
    found = [name for name in RUN_FILES if (out / name).exists()]
    if found and not resume and not overwrite:
        raise AcfdError(
            f"--out {out} already holds a training run ({', '.join(found)}); continue it with --resume {out / 'last.pth'}, "
            "start over in it with --overwrite, or choose another --out"
        )


class Trainer:
    def __init__(self, cfg: TrainConfig, resume: str | None = None, progress: bool = True, overwrite: bool = False) -> None:
        check_out(Path(cfg.out), resume, overwrite)
        self.cfg = cfg
        self.progress = progress
        self.device = _setup_distributed(cfg.device)
        torch.manual_seed(cfg.seed)
        self.model_config = resolve_config(cfg.config)
        aug = AugmentConfig(size=self.train_size)
        self.dataset = FaceDataset(cfg.data, cfg.images, aug, seed=cfg.seed)
        world = dist.get_world_size() if dist.is_initialized() else 1
        if len(self.dataset) // world < cfg.batch:
            raise AcfdError(f"--batch {cfg.batch} is larger than the {len(self.dataset) // world} training images per process")
        self.val = None
        if cfg.val_data:
            if not cfg.val_images:
                raise AcfdError("--val-data needs --val-images")
            self.val = FaceDataset(cfg.val_data, cfg.val_images, None)
        self.model = build_model(self.model_config).to(self.device)
        if dist.is_initialized() and torch.cuda.is_available():
            self.model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        self.optimizer = torch.optim.SGD(self._param_groups(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
        self.start_epoch, self.iteration, self.best_ap = 0, 0, -1.0
        if resume:
            self._resume(resume)
        self.ddp = (
            DistributedDataParallel(self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
            if dist.is_initialized()
            else None
        )
        self.scaler = torch.amp.GradScaler("cuda", enabled=cfg.amp and self.device.type == "cuda")
        self.out = Path(cfg.out)
        if _is_main():
            self.out.mkdir(parents=True, exist_ok=True)

    @property
    def train_size(self) -> tuple[int, int]:
        size = self.cfg.imgsz
        return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))

    def _param_groups(self) -> list[dict[str, Any]]:
        """No weight decay on BN parameters and biases (standard; decaying BN gammas shrinks features)."""
        decay: list[torch.nn.Parameter] = []
        no_decay: list[torch.nn.Parameter] = []
        for p in self.model.parameters():
            (no_decay if p.ndim <= 1 else decay).append(p)
        return [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}]

    def _resume(self, path: str) -> None:
        ckpt = read_checkpoint(path)
        stored = ckpt.config if isinstance(ckpt.config, dict) else None
        if stored is None or resolve_config(stored) != self.model_config:
            name = stored.get("name") if stored else "an unknown config"
            raise AcfdError(f"--resume {path} is a checkpoint of {name}, not {self.model_config.name}")
        if "optimizer" not in ckpt.extra:
            raise AcfdError(f"--resume {path} holds no optimizer state (it is not a training checkpoint written by acfd-train)")
        self.model.load_state_dict(ckpt.state_dict, strict=True)
        self.optimizer.load_state_dict(ckpt.extra["optimizer"])
        self.start_epoch = int(ckpt.extra["epoch"]) + 1
        self.iteration = int(ckpt.extra["iteration"])
        self.best_ap = float(ckpt.extra.get("best_ap", -1.0))

    def _set_lr(self, epoch: int) -> float:
        lr = learning_rate(self.iteration, epoch, self.cfg.lr, self.cfg.resolved_milestones(), self.cfg.warmup_iters)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

    def train_epoch(self, epoch: int) -> dict[str, float]:
        cfg = self.cfg
        self.dataset.set_epoch(epoch)
        if dist.is_initialized():
            sampler: Any = DistributedSampler(self.dataset, shuffle=True, seed=cfg.seed, drop_last=True)
            sampler.set_epoch(epoch)
        else:
            sampler = RandomSampler(self.dataset, generator=torch.Generator().manual_seed(cfg.seed * 1000 + epoch))
        loader = DataLoader(
            self.dataset,
            batch_size=cfg.batch,
            sampler=sampler,
            num_workers=cfg.workers,
            collate_fn=collate,
            drop_last=True,
            persistent_workers=False,
        )
        model = self.ddp or self.model
        model.train()
        sums = {"loss": 0.0, "cls": 0.0, "reg": 0.0, "matched": 0.0, "compensated": 0.0}
        steps = 0
        total = len(loader) if cfg.max_iters_per_epoch is None else min(len(loader), cfg.max_iters_per_epoch)
        bar = None
        if self.progress and _is_main():
            from tqdm import tqdm

            bar = tqdm(total=total, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="it", disable=None)
        lr = self._set_lr(epoch)
        for images, boxes in loader:
            if steps >= total:
                break
            lr = self._set_lr(epoch)
            images = images.to(self.device, non_blocking=True)
            with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.scaler.is_enabled()):
                out = model(images)
            parts = mbc_loss(out.logits, out.deltas, out.anchors, [b.to(self.device) for b in boxes], cfg.loss)
            if not math.isfinite(parts.total.item()):
                raise FloatingPointError(f"loss became {parts.total.item()} at iteration {self.iteration}; lower --lr")
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(parts.total).backward()
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.clip_grad_norm)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.iteration += 1
            steps += 1
            for key, value in (
                ("loss", parts.total.item()),
                ("cls", parts.cls.item()),
                ("reg", parts.reg.item()),
                ("matched", parts.matched),
                ("compensated", parts.compensated),
            ):
                sums[key] += float(value)
            if bar is not None:
                bar.set_postfix(loss=f"{parts.total.item():.3f}", lr=f"{lr:.2g}", pos=f"{parts.matched}+{parts.compensated}")
                bar.update()
        if bar is not None:
            bar.close()
        return {k: v / max(steps, 1) for k, v in sums.items()} | {"lr": lr}

    @torch.no_grad()
    def validate(self) -> float:
        """AP50 of the challenge metric on the validation set at one scale."""
        if self.val is None:
            return float("nan")
        from acfd_deploy.eval.metric import evaluate
        from acfd_deploy.pipeline.detector import Detector, DetectorConfig
        from acfd_deploy.pipeline.io import load_image
        from acfd_deploy.runtime.torch_runner import TorchRunner

        h, w = self.cfg.val_imgsz or self.train_size
        detector = Detector(TorchRunner(self.model, device=self.device), DetectorConfig(scales=((h, w),), batch_size=8))
        gt, boxes, scores = {}, {}, {}
        try:
            for path, faces in self.val.items:
                det = detector.detect([load_image(path)])[0]
                gt[path.name], boxes[path.name], scores[path.name] = faces, det.boxes, det.scores
        finally:
            self.model.train()
        return evaluate(gt, boxes, scores).ap

    def save(self, epoch: int, name: str) -> Path:
        extra = _state_for_resume(self.optimizer, epoch, self.iteration, self.best_ap, self.cfg)
        return save_checkpoint(self.model, self.out / name, extra=extra)

    def fit(self) -> dict[str, Any]:
        log_path = self.out / "log.csv"
        # a resumed run keeps the rows of the epochs its checkpoint holds, and drops rows a
        # killed run logged after its last checkpoint; a new run starts a new log
        logged = _read_rows(log_path) if self.start_epoch > 0 else []
        logged = [r for r in logged if int(r.get("epoch", 0)) <= self.start_epoch]
        history: list[dict[str, Any]] = []
        for epoch in range(self.start_epoch, self.cfg.epochs):
            start = time.perf_counter()
            stats = self.train_epoch(epoch)
            if _is_main():
                ap = self.validate()
                row = {
                    "epoch": epoch + 1,
                    "iterations": self.iteration,
                    "val_ap": ap,
                    "seconds": round(time.perf_counter() - start, 1),
                } | stats
                history.append(row)
                logged.append(row)
                _write_log(log_path, logged)
                plot_history(read_log(log_path), self.out / "curves.png", title=f"{self.model_config.name}: {self.out}")
                if not math.isnan(ap) and ap > self.best_ap:
                    self.best_ap = ap
                    self.save(epoch, "best.pth")
                self.save(epoch, "last.pth")
                print(
                    f"epoch {epoch + 1}/{self.cfg.epochs}: loss {stats['loss']:.4f} (cls {stats['cls']:.4f}, reg {stats['reg']:.4f}), "
                    f"val AP50 {ap:.4f}, {row['seconds']} s",
                    flush=True,
                )
            if dist.is_initialized():
                dist.barrier()
        return {"best_ap": self.best_ap, "history": history, "out": str(self.out)}


def _read_rows(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _write_log(path: Path, rows: list[dict[str, Any]]) -> None:
    """The whole log, rewritten atomically each epoch: a kill mid-write cannot leave a
    torn last line."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=LOG_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (round(v, 6) if isinstance(v, float) else v) for k, v in row.items()})

"""acfd-train: the paper's training method on iCartoonFace-format data (or synthetic faces).

acfd-train --data train.csv --images DIR [--val-data val.csv --val-images DIR]
acfd-train --synthetic 2000 --epochs 30 --imgsz 384 --out runs/demo
torchrun --nproc-per-node 4 -m acfd_deploy.cli.train --data ... --batch 16   # DDP
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from acfd_deploy.cli.common import (
    EXIT_OK,
    add_device,
    add_imgsz,
    any_int,
    make_parser,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    run,
)
from acfd_deploy.configs import list_configs, resolve_config
from acfd_deploy.errors import AcfdError

PROG = "acfd-train"


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    p = make_parser(prog, "Train ACFD with DAM and the MBC loss (the paper's Sec. 3.4, 3.5, 4.1).")
    p.add_argument("--data", metavar="CSV", help="training CSV in iCartoonFace format (image,x1,y1,x2,y2)")
    p.add_argument("--images", metavar="DIR", help="folder holding the training images")
    p.add_argument("--val-data", metavar="CSV", help="validation CSV (image,x1,y1,x2,y2[,face]); AP50 is computed each epoch")
    p.add_argument("--val-images", metavar="DIR", help="folder holding the validation images")
    p.add_argument(
        "--synthetic",
        type=positive_int,
        metavar="N",
        help="first write N synthetic training images (and N/10 validation images) under OUT/data",
    )
    add_imgsz(p, (640, 640), "size of the --synthetic images", "--synth-imgsz", "--synth-size")
    p.add_argument("--config", default="acfd-tiny", metavar="NAME", help=f"model config: {', '.join(list_configs())}")
    p.add_argument("--epochs", type=positive_int, default=30, metavar="N", help="passes over the training images")
    p.add_argument("--batch", type=positive_int, default=16, metavar="N", help="training images per process and optimizer step")
    add_imgsz(p, (640, 640), "training input size: crops are resized to it (the paper: 640)")
    add_device(p, help="where training runs (under torchrun, each process takes its LOCAL_RANK GPU)")
    p.add_argument(
        "--lr", type=positive_float, default=0.01, metavar="LR", help="learning rate after warm-up (the paper: 0.04 at a total batch of 64)"
    )
    p.add_argument("--warmup-iters", type=non_negative_int, default=1000, metavar="N", help="linear warm-up from 1e-6 (the paper: 1000)")
    p.add_argument(
        "--milestones",
        type=positive_int,
        nargs="*",
        default=[],
        metavar="EPOCH",
        help="epochs at which the rate drops 10x (default: 2/3, 5/6, 14/15 of --epochs, as the paper)",
    )
    p.add_argument(
        "--clip-grad", type=non_negative_float, default=35.0, metavar="NORM", help="clip the gradient norm to this (0: no clipping)"
    )
    p.add_argument("--workers", type=non_negative_int, default=2, metavar="N", help="data-loading processes")
    p.add_argument(
        "--seed", type=any_int, default=0, metavar="N", help="seed of the weights, the data order and augmentation, and --synthetic data"
    )
    p.add_argument(
        "--out", default="runs/train", metavar="DIR", help="folder of last.pth, best.pth, log.csv and curves.png (redrawn each epoch)"
    )
    p.add_argument("--resume", metavar="CKPT", help="continue from a last.pth written by acfd-train")
    p.add_argument(
        "--overwrite", action="store_true", help="start a new run in an --out that holds one (its log.csv and checkpoints are replaced)"
    )
    p.add_argument("--max-iters-per-epoch", type=positive_int, metavar="N", help="cap iterations per epoch (smoke tests)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def _synthesize(args: argparse.Namespace) -> None:
    from acfd_deploy.data import write_dataset

    root = Path(args.out) / "data"
    size = tuple(args.synth_imgsz)
    n_val = max(args.synthetic // 10, 8)
    args.data = str(
        write_dataset(root / "train", args.synthetic, seed=args.seed * 1000 + 1, size=size, kind="train", progress=not args.no_progress)
    )
    args.images = str(root / "train" / "images")
    args.val_data = str(write_dataset(root / "val", n_val, seed=args.seed * 1000 + 2, size=size, kind="val", progress=not args.no_progress))
    args.val_images = str(root / "val" / "images")


def _body(args: argparse.Namespace) -> int:
    from acfd_deploy.train.trainer import TrainConfig, Trainer

    resolve_config(args.config)  # fail fast on an unknown name
    if args.synthetic:
        _synthesize(args)
    if not args.data or not args.images:
        raise AcfdError("give --data and --images, or --synthetic N")
    if args.lr <= 0:
        raise AcfdError(f"--lr must be positive, got {args.lr}")
    cfg = TrainConfig(
        data=args.data,
        images=args.images,
        val_data=args.val_data,
        val_images=args.val_images,
        config=args.config,
        epochs=args.epochs,
        batch=args.batch,
        imgsz=tuple(args.imgsz),
        device=args.device,
        lr=args.lr,
        warmup_iters=args.warmup_iters,
        milestones=tuple(args.milestones),
        workers=args.workers,
        clip_grad_norm=args.clip_grad if args.clip_grad > 0 else float("inf"),
        seed=args.seed,
        out=args.out,
        max_iters_per_epoch=args.max_iters_per_epoch,
    )
    import torch.distributed as dist

    result = Trainer(cfg, resume=args.resume, progress=not args.no_progress, overwrite=args.overwrite).fit()
    rank = dist.get_rank() if dist.is_initialized() else 0
    if dist.is_initialized():
        dist.destroy_process_group()
    if rank == 0:  # one summary line, not one per process
        print(json.dumps({"best_ap": result["best_ap"], "out": result["out"]}))
    return EXIT_OK


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    return run(prog, _body, build_parser(prog), argv)


if __name__ == "__main__":
    raise SystemExit(main())

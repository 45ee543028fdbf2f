"""The trainer on a few synthetic images: loss goes down, resume continues, DDP on CPU."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from acfd_deploy.checkpoint import read_checkpoint
from acfd_deploy.cli.train import main as train_main
from acfd_deploy.data import write_dataset
from acfd_deploy.errors import AcfdError
from acfd_deploy.train.schedule import learning_rate, paper_milestones
from acfd_deploy.train.trainer import TrainConfig, Trainer

SIZE = 256  # the coarsest level is 2x2: BatchNorm over 1x1 maps at batch 2 is degenerate


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("synth")
    csv_path = write_dataset(root, 16, seed=3, size=(SIZE, SIZE), kind="train")
    return csv_path, root / "images"


def _config(synth: tuple[Path, Path], out: Path, **kw) -> TrainConfig:
    csv_path, images = synth
    base = dict(data=str(csv_path), images=str(images), batch=4, imgsz=SIZE, epochs=1, warmup_iters=1, workers=0, out=str(out), lr=0.01)
    base.update(kw)
    return TrainConfig(**base)


def test_schedule_warms_up_then_steps() -> None:
    assert learning_rate(0, 0, 0.04, (200, 250)) == pytest.approx(1e-6)
    assert learning_rate(500, 0, 0.04, (200, 250)) == pytest.approx(1e-6 + (0.04 - 1e-6) / 2)
    assert learning_rate(1000, 10, 0.04, (200, 250)) == pytest.approx(0.04)
    assert learning_rate(99999, 200, 0.04, (200, 250)) == pytest.approx(0.004)
    assert learning_rate(99999, 260, 0.04, (200, 250)) == pytest.approx(0.0004)
    assert paper_milestones(300) == (200, 250, 280)


def test_training_lowers_the_loss_on_a_fixed_batch(synth: tuple[Path, Path], tmp_path: Path) -> None:
    """Overfit one batch: if gradients, DAM targets or the loss were wrong this would not drop.
    (Adam, because plain SGD needs the paper's long warm-up to be stable from a Kaiming init.)"""
    from acfd_deploy.train.dataset import collate
    from acfd_deploy.train.loss import mbc_loss

    trainer = Trainer(_config(synth, tmp_path), progress=False)
    trainer.dataset.augment_config = None
    images, boxes = collate([trainer.dataset[i] for i in range(4)])
    model = trainer.model.train()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(16):
        out = model(images)
        parts = mbc_loss(out.logits, out.deltas, out.anchors, boxes)
        opt.zero_grad()
        parts.total.backward()
        opt.step()
        losses.append(parts.total.item())
    assert min(losses[-3:]) < 0.75 * losses[0], losses


def test_resume_continues_where_it_stopped(synth: tuple[Path, Path], tmp_path: Path) -> None:
    first = Trainer(_config(synth, tmp_path, epochs=1), progress=False).fit()
    assert len(first["history"]) == 1
    ckpt = read_checkpoint(tmp_path / "last.pth")
    assert ckpt.extra["epoch"] == 0 and ckpt.extra["iteration"] == 4
    resumed = Trainer(_config(synth, tmp_path, epochs=2), resume=str(tmp_path / "last.pth"), progress=False)
    assert (resumed.start_epoch, resumed.iteration) == (1, 4)
    sd = ckpt.state_dict
    assert all(torch.equal(sd[k], v) for k, v in resumed.model.state_dict().items())
    result = resumed.fit()
    assert [row["epoch"] for row in result["history"]] == [2]
    assert read_checkpoint(tmp_path / "last.pth").extra["iteration"] == 8
    log = (tmp_path / "log.csv").read_text().splitlines()
    assert log[0].startswith("epoch,") and len(log) == 3
    # the curves cover both runs' epochs (the plot is redrawn from the whole log)
    from acfd_deploy.train.plot import read_log

    assert [r["epoch"] for r in read_log(tmp_path / "log.csv")] == [1.0, 2.0]
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_resume_of_another_config_is_refused(synth: tuple[Path, Path], tmp_path: Path) -> None:
    Trainer(_config(synth, tmp_path), progress=False).fit()
    other = TrainConfig(**{**_config(synth, tmp_path).__dict__, "config": "acfd-vovnetv3-51"})
    with pytest.raises(AcfdError, match="is a checkpoint of acfd-tiny, not acfd-vovnetv3-51"):
        Trainer(other, resume=str(tmp_path / "last.pth"), progress=False)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--config", "acfd-nope", "--data", "x.csv", "--images", "."], "unknown model config"),
        (["--data", "missing.csv", "--images", "."], "annotation CSV not found"),
        (["--images", "."], "give --data and --images"),
    ],
)
def test_bad_usage_exits_2(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert train_main([*args, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_batch_larger_than_data_and_missing_images(synth: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv_path, images = synth
    assert train_main(["--data", str(csv_path), "--images", str(images), "--batch", "64", "--out", str(tmp_path), "--no-progress"]) == 2
    assert "larger than the 16 training images" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert train_main(["--data", str(csv_path), "--images", str(empty), "--out", str(tmp_path), "--no-progress"]) == 2
    assert "16 of 16 images" in capsys.readouterr().err
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("a.jpg,1,2\nnot,a,row,at,all\n")
    assert train_main(["--data", str(bad_csv), "--images", str(images), "--out", str(tmp_path), "--no-progress"]) == 2
    assert "no usable row" in capsys.readouterr().err


def test_an_out_holding_a_run_needs_resume_or_overwrite(
    synth: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A second run into the same --out would mix two runs in one log.csv: refused, untouched."""
    from acfd_deploy.train.trainer import check_out

    csv_path, images = synth
    (tmp_path / "log.csv").write_text("epoch,loss\n1,0.5\n")
    args = ["--data", str(csv_path), "--images", str(images), "--out", str(tmp_path), "--epochs", "1", "--no-progress"]
    assert train_main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already holds a training run (log.csv)" in err[0], err
    assert f"--resume {tmp_path / 'last.pth'}" in err[0] and "--overwrite" in err[0]
    assert (tmp_path / "log.csv").read_text() == "epoch,loss\n1,0.5\n" and sorted(p.name for p in tmp_path.iterdir()) == ["log.csv"]
    check_out(tmp_path, resume=None, overwrite=True)  # either flag lets the run in
    check_out(tmp_path, resume=str(tmp_path / "last.pth"), overwrite=False)
    check_out(tmp_path / "fresh", resume=None, overwrite=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_ddp_step_on_cpu(synth: tuple[Path, Path], tmp_path: Path) -> None:
    """torchrun with the gloo backend: both ranks train, rank 0 alone writes."""
    csv_path, images = synth
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(_free_port()),
        "-m", "acfd_deploy.cli.train", "--data", str(csv_path), "--images", str(images), "--batch", "2", "--imgsz", str(SIZE),
        "--epochs", "1", "--warmup-iters", "1", "--workers", "0", "--out", str(tmp_path), "--no-progress",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    ckpt = read_checkpoint(tmp_path / "last.pth")
    # 16 images over 2 ranks at batch 2: 4 steps, each seeing 4 images
    assert ckpt.extra["iteration"] == 4
    summaries = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert len(summaries) == 1 and json.loads(summaries[0])["out"] == str(tmp_path), proc.stdout

"""The package works outside the checkout: a wheel built from it, installed into a fresh
environment, runs the README's main job from an empty folder, with the demo model and the
calibration images it ships as package data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet", "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (found,) = out.glob("acfd_deploy-*.whl")
    return found


def test_wheel_ships_the_demo_model_card_and_calibration_images(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert "acfd_deploy/assets/acfd-tiny-demo.pth" in names
    assert "acfd_deploy/assets/acfd-tiny-demo.md" in names
    assert sum(n.startswith("acfd_deploy/assets/calib/") and n.endswith(".png") for n in names) >= 16
    assert not [n for n in names if n.startswith("tests/") or "__pycache__" in n]


def test_installed_wheel_runs_the_main_job_from_an_empty_folder(wheel: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True)
    python = env_dir / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], capture_output=True, text=True, check=True
        ).stdout.strip()
    )
    # the dependencies (torch, onnxruntime, ...) come from this environment; acfd_deploy must
    # come from the wheel: a path entry does not run this environment's .pth files, so the
    # editable install of the checkout stays invisible
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--quiet", str(wheel)],
        check=True,
        capture_output=True,
    )
    work = tmp_path / "empty"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    where = subprocess.run(
        [str(python), "-c", "import acfd_deploy; print(acfd_deploy.__file__)"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert Path(where.stdout.strip()).is_relative_to(env_dir), where.stdout
    run = subprocess.run([str(env_dir / "bin" / "acfd-export"), "--fp16", "--int8"], cwd=work, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    manifest = json.loads((work / "exports" / "export.json").read_text())
    assert manifest["status"] == "passed"
    assert {a["name"] for a in manifest["artifacts"]} >= {"PyTorch folded", "ONNX fp32", "ONNX fp16", "ONNX int8"}
    assert Path(manifest["weights"]["source"]).is_relative_to(env_dir)  # the demo model the wheel installed
    assert manifest["options"]["calib"] == "the bundled calibration images"
    assert sorted(p.name for p in work.iterdir()) == ["exports"]  # nothing else written into the working folder

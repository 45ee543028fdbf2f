"""What to benchmark: artifacts found from paths or an export folder, each with a
factory for its runner (so loading happens once, right before it is measured)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from acfd_deploy.checkpoint import CHECKPOINT_SUFFIXES as TORCH_SUFFIXES
from acfd_deploy.errors import AcfdError
from acfd_deploy.runtime.base import Runner


@dataclass
class Target:
    artifact: str  # what the table calls it
    backend: str  # torch | onnxruntime | tensorrt
    precision: str
    path: Path | None
    make_runner: Callable[[], Runner]

    @property
    def size_mb(self) -> float | None:
        return self.path.stat().st_size / 1e6 if self.path and self.path.is_file() else None


@dataclass(frozen=True)
class TorchOptions:
    device: str = "cpu"
    precision: str = "fp32"
    cuda_graphs: bool = False
    compile: bool = False


def _torch_targets(path: Path, opts: TorchOptions) -> list[Target]:
    from acfd_deploy import is_reparameterized, load_model, reparameterize
    from acfd_deploy.runtime.torch_runner import TorchRunner

    model = load_model(path)
    targets = []
    if not is_reparameterized(model):
        targets.append(
            Target(
                f"{path.name} (training graph)",
                "torch",
                opts.precision,
                path,
                lambda: TorchRunner(model, opts.device, opts.precision, "torch"),
            )
        )
    folded = model if is_reparameterized(model) else reparameterize(model)
    targets.append(
        Target(f"{path.name} (folded)", "torch", opts.precision, path, lambda: TorchRunner(folded, opts.device, opts.precision, "torch"))
    )
    # variants measured in the same run, so their speed-ups are ratios on one machine state
    if opts.cuda_graphs:
        targets.append(
            Target(
                f"{path.name} (folded, CUDA graphs)",
                "torch",
                opts.precision,
                path,
                lambda: TorchRunner(folded, opts.device, opts.precision, "torch", cuda_graphs=True),
            )
        )
    if opts.compile:
        targets.append(
            Target(
                f"{path.name} (folded, torch.compile)",
                "torch",
                opts.precision,
                path,
                lambda: TorchRunner(folded, opts.device, opts.precision, "torch", compile=True, cuda_graphs=opts.cuda_graphs),
            )
        )
    return targets


def _onnx_target(path: Path, device: str) -> Target:
    from acfd_deploy.runtime.onnx_runner import OnnxRuntimeRunner, precision_of

    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device == "cuda" else ["CPUExecutionProvider"]
    return Target(path.name, "onnxruntime", precision_of(path), path, lambda: OnnxRuntimeRunner(path, providers=providers))


def _plan_target(path: Path) -> Target:
    precision = "fp32"
    sidecar = path.with_name(path.name + ".json")
    if sidecar.is_file():
        try:
            precision = json.loads(sidecar.read_text()).get("precision", precision)
        except json.JSONDecodeError:
            raise AcfdError(f"engine sidecar {sidecar} is not valid JSON") from None

    def make() -> Runner:
        from acfd_deploy.runtime.tensorrt_runner import TensorRTRunner

        return TensorRTRunner(path)

    return Target(path.name, "tensorrt", precision, path, make)


def targets_for_path(path: Path, opts: TorchOptions) -> list[Target]:
    if not path.exists():
        raise AcfdError(f"artifact not found: {path}")
    if not path.is_file():
        raise AcfdError(f"artifact is not a file: {path} (use --export-dir for a folder)")
    suffix = path.suffix.lower()
    if suffix in TORCH_SUFFIXES:
        return _torch_targets(path, opts)
    if suffix == ".onnx":
        return [_onnx_target(path, opts.device)]
    if suffix in (".plan", ".engine"):
        return [_plan_target(path)]
    raise AcfdError(f"unknown artifact type {path.suffix!r} for {path}; expected .pth/.pt/.safetensors, .onnx or .plan")


def targets_for_export_dir(folder: Path, opts: TorchOptions) -> tuple[list[Target], Path | None]:
    """Every artifact listed in ``folder/export.json``, and the weights it was made from
    (the parity reference) when that file is still there."""
    manifest_path = folder / "export.json"
    if not manifest_path.is_file():
        raise AcfdError(f"{folder} has no export.json (is it an acfd-export output folder?)")
    try:
        manifest = json.loads(manifest_path.read_text())
        listed = [a for a in manifest["artifacts"] if a.get("path")]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise AcfdError(f"{manifest_path} is not a valid export manifest") from None
    targets: list[Target] = []
    weights = manifest.get("weights", {}).get("source")
    reference = Path(weights) if weights and Path(weights).is_file() else None
    if reference is not None:
        targets.extend(t for t in _torch_targets(reference, opts) if "training graph" in t.artifact)
    for entry in listed:
        path = folder / entry["path"]
        if not path.is_file():
            raise AcfdError(f"{manifest_path} lists {entry['path']}, which is missing")
        if path.suffix == ".plan" and opts.device != "cuda":
            continue
        targets.extend(targets_for_path(path, opts))
    return targets, reference

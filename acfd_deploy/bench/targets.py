"""What to benchmark: artifacts found from model references or an export folder, each
with a factory for its runner (so loading happens once, right before it is measured).

Every reference goes through the runner registry, so acfd-bench takes exactly what
acfd-detect takes; a checkpoint adds the PyTorch variants measured in the same run."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from acfd_deploy.errors import AcfdError
from acfd_deploy.runtime.base import Runner


@dataclass
class Target:
    artifact: str  # what the table calls it
    backend: str  # the registry's backend name
    precision: str
    path: Path | None  # None for a server URL
    make_runner: Callable[[], Runner]
    reference: str | None = None  # the model reference (path or URL)

    @property
    def size_mb(self) -> float | None:
        """The artifact's size on disk (an OpenVINO IR's weights file included)."""
        if self.path is None or not self.path.is_file():
            return None
        weights = self.path.with_suffix(".bin") if self.path.suffix == ".xml" else None
        return (self.path.stat().st_size + (weights.stat().st_size if weights and weights.is_file() else 0)) / 1e6


@dataclass(frozen=True)
class TorchOptions:
    device: str = "cpu"
    precision: str = "fp32"
    cuda_graphs: bool = False
    compile: bool = False


def _torch_targets(path: Path, opts: TorchOptions, training_graph: bool = True) -> list[Target]:
    from acfd_deploy import is_reparameterized, load_model, reparameterize
    from acfd_deploy.runtime.torch_runner import TorchRunner

    model = load_model(path)
    targets = []
    folded_already = is_reparameterized(model)

    def variant(label: str, graph: object, **kwargs: bool) -> Target:
        return Target(
            f"{path.name} ({label})",
            "torch",
            opts.precision,
            path,
            lambda: TorchRunner(graph, opts.device, opts.precision, "torch", **kwargs),  # type: ignore[arg-type]
            str(path),
        )

    if training_graph and not folded_already:
        targets.append(variant("training graph", model))
    folded = model if folded_already else reparameterize(model)
    targets.append(variant("folded", folded))
    # variants measured in the same run, so their speed-ups are ratios on one machine state
    if opts.cuda_graphs:
        targets.append(variant("folded, CUDA graphs", folded, cuda_graphs=True))
    if opts.compile:
        targets.append(variant("folded, torch.compile", folded, compile=True, cuda_graphs=opts.cuda_graphs))
    return targets


def targets_for(
    reference: str | Path,
    opts: TorchOptions,
    backend: str | None = None,
    options: dict[str, object] | None = None,
    label: str | None = None,
) -> list[Target]:
    """The targets of one ``--model`` reference: a checkpoint gives its PyTorch graphs,
    anything else one target run by its registry backend (with runner ``options``, e.g.
    an OpenVINO inference precision)."""
    from acfd_deploy.runtime.registry import artifact_precision, backend_for, is_url, load_runner

    text = str(reference)
    if not is_url(text):
        path = Path(text)
        if not path.exists():
            raise AcfdError(f"artifact not found: {path}")
        if not path.is_file():
            raise AcfdError(f"artifact is not a file: {path} (use --export-dir for a folder)")
    chosen = backend_for(text, backend)
    if chosen.name == "torch":
        return _torch_targets(Path(text), opts)
    path_or_none = None if is_url(text) else Path(text)
    name = label or (path_or_none.name if path_or_none is not None else text)
    kwargs = dict(options or {})
    precision = str(kwargs.get("precision") or artifact_precision(text, chosen.name))
    return [
        Target(
            name, chosen.name, precision, path_or_none, lambda: load_runner(text, device=opts.device, backend=chosen.name, **kwargs), text
        )
    ]


def targets_for_export_dir(folder: Path, opts: TorchOptions) -> tuple[list[Target], Path | None]:
    """Every artifact listed in ``folder/export.json`` (those that run on this device),
    and the weights it was made from (the parity reference) when that file still exists."""
    from acfd_deploy.manifest import read_manifest
    from acfd_deploy.runtime.device import parse_device
    from acfd_deploy.runtime.registry import backend_for

    manifest = read_manifest(folder)
    targets: list[Target] = []
    source = (manifest.get("weights") or {}).get("source")
    reference = Path(source) if source and source != "random" and Path(source).is_file() else None
    if reference is not None:
        targets.extend(t for t in _torch_targets(reference, opts) if "training graph" in t.artifact)
    seen: set[tuple[str, str]] = set()
    for entry in manifest["artifacts"]:
        path = folder / entry["path"]
        if not path.is_file():
            raise AcfdError(f"{folder / 'export.json'} lists {entry['path']}, which is missing")
        backend = entry.get("backend")
        kind = parse_device(opts.device).kind
        if kind != "auto" and kind not in backend_for(path, backend).devices:
            continue  # runs elsewhere (a plan on a CPU run, OpenVINO IR on a CUDA run), as load_runner would refuse
        if path.suffix == ".pt2" and not _pt2_runs_on(path, opts.device):
            continue  # an AOTInductor package compiled for the other device kind, as its runner would refuse
        key = (str(path), entry.get("precision", ""))
        if key in seen:
            continue
        seen.add(key)
        if path.suffix in (".pt", ".pth", ".safetensors"):
            targets.extend(_torch_targets(path, opts, training_graph=False))
        else:
            options = entry.get("runner_options") or None
            label = f"{path.name} ({entry['precision']})" if options else None
            targets.extend(targets_for(path, opts, backend, options, label))
    return targets, reference


def _pt2_runs_on(path: Path, device: str) -> bool:
    from acfd_deploy.runtime.device import resolve_device
    from acfd_deploy.runtime.pt2_package import package_device

    return package_device(path) == resolve_device(device).kind

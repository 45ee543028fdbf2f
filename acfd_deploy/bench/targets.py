"""What to benchmark: artifacts found from model references or an export folder, each
with a factory for its runner (so loading happens once, right before it is measured).

Every reference goes through the runner registry, so acfd-bench takes exactly what
acfd-detect takes; a checkpoint adds the PyTorch variants measured in the same run."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from acfd_deploy import is_reparameterized, load_model, reparameterize
from acfd_deploy.checkpoint import CHECKPOINT_SUFFIXES
from acfd_deploy.errors import AcfdError
from acfd_deploy.fileio import require_file
from acfd_deploy.manifest import read_manifest
from acfd_deploy.runtime.base import Runner
from acfd_deploy.runtime.device import parse_device, resolve_device
from acfd_deploy.runtime.registry import artifact_precision, backend_for, backend_named, is_url, load_runner
from acfd_deploy.runtime.torch_runner import TorchRunner


@dataclass
class Target:
    artifact: str  # what the table calls it
    backend: str  # the registry's backend name
    precision: str
    path: Path | None  # None for a server URL
    make_runner: Callable[[int], Runner]  # for runs of up to this many images per call
    reference: str | None = None  # the model reference (path or URL)
    training_graph: bool = False  # the unfolded checkpoint: what --parity compares with

    @property
    def per_batch(self) -> bool:
        """Whether its runner is set up per batch size (the backend has ``batch_options``,
        e.g. OpenVINO's throughput mode above one image): acfd-bench then loads one runner
        per batch size, so each row times what acfd-detect runs at that batch."""
        return bool(backend_named(self.backend).batch_options)

    @property
    def size_mb(self) -> float | None:
        """The artifact's size on disk (an OpenVINO IR's weights file included)."""
        if self.path is None or not self.path.is_file():
            return None
        weights = self.path.with_suffix(".bin") if self.path.suffix == ".xml" else None
        return (self.path.stat().st_size + (weights.stat().st_size if weights and weights.is_file() else 0)) / 1e6


@dataclass(frozen=True)
class TorchOptions:
    """``device``: where the PyTorch variants run (torch's answer for ``--device``);
    ``artifact_device``: the ``--device`` every other artifact's runner gets, resolved by
    the registry with its own backend's answer (None: ``device``)."""

    device: str = "cpu"
    precision: str = "fp32"
    cuda_graphs: bool = False
    compile: bool = False
    artifact_device: str | None = None

    @property
    def requested(self) -> str:
        return self.artifact_device or self.device


def _torch_targets(path: Path, opts: TorchOptions, training_graph: bool = True) -> list[Target]:
    model = load_model(path)
    targets = []
    folded_already = is_reparameterized(model)

    def variant(label: str, graph: object, training: bool = False, **kwargs: bool) -> Target:
        return Target(
            f"{path.name} ({label})",
            "torch",
            opts.precision,
            path,
            lambda batch: TorchRunner(graph, opts.device, opts.precision, "torch", **kwargs),  # type: ignore[arg-type]
            str(path),
            training_graph=training,
        )

    if training_graph and not folded_already:
        targets.append(variant("training graph", model, training=True))
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
    text = str(reference)
    if not is_url(text):
        require_file(text, "artifact", hint=" (use --export-dir for a folder)")
    chosen = backend_for(text, backend)
    if chosen.name == "torch":
        return _torch_targets(Path(text), opts)
    path_or_none = None if is_url(text) else Path(text)
    name = label or (path_or_none.name if path_or_none is not None else text)
    kwargs = dict(options or {})
    precision = str(kwargs.get("precision") or artifact_precision(text, chosen.name))
    device = opts.requested

    def make(batch: int) -> Runner:
        return load_runner(text, device=device, backend=chosen.name, batch=batch, **kwargs)

    return [Target(name, chosen.name, precision, path_or_none, make, text)]


def targets_for_export_dir(folder: Path, opts: TorchOptions) -> tuple[list[Target], Path | None]:
    """Every artifact listed in ``folder/export.json`` (those that run on this device),
    and the weights it was made from (the parity reference) when that file still exists."""
    manifest = read_manifest(folder)
    targets: list[Target] = []
    source = (manifest.get("weights") or {}).get("source")
    reference = Path(source) if source and source != "random" and Path(source).is_file() else None
    if reference is not None:
        targets.extend(t for t in _torch_targets(reference, opts) if t.training_graph)
    seen: set[tuple[str, str]] = set()
    for entry in manifest["artifacts"]:
        path = folder / entry["path"]
        if not path.is_file():
            raise AcfdError(f"{folder / 'export.json'} lists {entry['path']}, which is missing")
        backend = entry.get("backend")
        chosen = backend_for(path, backend)
        kind = parse_device(opts.requested).kind
        if kind == "auto":  # where this backend's runner would run (the one device answer)
            kind = resolve_device("auto", backend=chosen.device_answer).kind
        if kind not in chosen.devices:
            continue  # runs elsewhere (a plan on a CPU run, OpenVINO IR on a CUDA run), as load_runner would refuse
        if path.suffix == ".pt2" and not _pt2_runs_on(path, opts.device):
            continue  # an AOTInductor package compiled for the other device kind, as its runner would refuse
        key = (str(path), entry.get("precision", ""))
        if key in seen:
            continue
        seen.add(key)
        if path.suffix in CHECKPOINT_SUFFIXES:
            targets.extend(_torch_targets(path, opts, training_graph=False))
        else:
            options = entry.get("runner_options") or None
            label = f"{path.name} ({entry['precision']})" if options else None
            details = entry.get("details") or {}
            if details.get("end2end"):  # its own scales, whatever the run's --imgsz / --ms-test
                label = f"{path.name} (end to end at {'+'.join(f'{h}x{w}' for h, w in details.get('scales', []))})"
            targets.extend(targets_for(path, opts, backend, options, label))
    return targets, reference


def _pt2_runs_on(path: Path, device: str) -> bool:
    from acfd_deploy.runtime.device import resolve_device
    from acfd_deploy.runtime.pt2_package import package_device

    return package_device(path) == resolve_device(device).kind

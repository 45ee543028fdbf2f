"""Triton model repositories: folders of ``<model>/config.pbtxt`` + ``<model>/1/<file>``.

Two kinds, kept apart because they run different code:

* :func:`write_serve_repository` (here), for the server acfd-serve starts (PyTriton's
  bundled ``tritonserver``, which has only the Python backend): ``acfd`` and
  ``acfd_engine`` are both Python-backend models running the artifact with acfd-deploy's
  own runner.
* :func:`acfd_deploy.tritonrepo.stock.write_model_repository`, for the **stock** Triton server
  (the NGC container, GPU nodes, Kubernetes): ``acfd_engine`` is the verified artifact
  itself, byte for byte, as ``model.plan`` or ``model.onnx``.

Same inputs and outputs in both (:mod:`acfd_deploy.tritonrepo.pbtxt`); different machinery,
said in each config's header. This module also holds what both writers share: the
folder checks and the end-to-end model ``acfd``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from importlib import resources
from pathlib import Path

from acfd_deploy.errors import AcfdError
from acfd_deploy.fileio import atomic_path, sha256_file
from acfd_deploy.pipeline.detector import DEFAULT_SCALE
from acfd_deploy.pipeline.preprocess import DEFAULT_MIN_SIZE
from acfd_deploy.runtime.registry import is_url
from acfd_deploy.tritonrepo.params import BLS_PREFIX, LOCAL_ENGINE, ModelParams
from acfd_deploy.tritonrepo.pbtxt import (
    DEFAULT_MAX_BATCH,
    DEFAULT_QUEUE_DELAY_US,
    E2E,
    END_TO_END,
    ENGINE,
    e2e_config,
    end_to_end_config,
    engine_config,
    pbtxt_string,
)

# the Python-backend models' source files, shipped as package data of acfd_deploy.serve
# (they import the serving glue at run time, inside Triton); read here as bytes, not imported
PYTHON_MODELS = "acfd_deploy.serve.models"


def _model_source(name: str) -> bytes:
    return resources.files(PYTHON_MODELS).joinpath(name, "model.py").read_bytes()


def write_text(path: Path, text: str) -> None:
    """A text file written atomically (a server reading the repository never sees half of it)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def copy_verified(artifact: Path, target: Path, recorded: str | None) -> str:
    """``artifact`` copied byte for byte to ``target`` (atomically); its sha256, which must
    be ``recorded`` (the one export.json holds) where there is one: a file that changed
    after it was verified, or while it was copied, is removed again and refused."""
    with atomic_path(target) as tmp:
        shutil.copyfile(artifact, tmp)
    digest = sha256_file(target)
    if recorded is not None and recorded != digest:
        target.unlink()
        raise AcfdError(f"{artifact.name} does not match the sha256 in its export.json: it changed after it was verified")
    return digest


def stock_placement(platform: str, file: str, instances: int) -> tuple[list[str], str]:
    """The config lines that say how the stock server runs a model file: its platform and
    file, and its instance group. A plan runs on a GPU only; ONNX without a kind goes to the
    GPUs where the server has them and to the CPU where it has none."""
    head = [f"platform: {pbtxt_string(platform)}", f"default_model_filename: {pbtxt_string(file)}"]
    group = f"{{ count: {instances} kind: KIND_GPU }}" if platform == "tensorrt_plan" else f"{{ count: {instances} }}"
    return head, group


def _write_python_model(repo: Path, name: str, source: str, config: str) -> None:
    with atomic_path(repo / name / "1" / "model.py") as tmp:
        tmp.write_bytes(_model_source(source))
    write_text(repo / name / "config.pbtxt", config)


def check_common(max_batch: int, queue_delay_us: int, instances: int) -> None:
    """The batching and instance settings both writers take."""
    if max_batch < 1:
        raise AcfdError(f"max batch must be at least 1, got {max_batch}")
    if queue_delay_us < 0:
        raise AcfdError(f"the queue delay must not be negative, got {queue_delay_us} us")
    if instances < 1:
        raise AcfdError(f"instances must be at least 1, got {instances}")


def instance_threads(instances: int) -> int:
    """Torch threads for each of ``instances`` model instances: this machine's cores split
    among them (at least one each), so they do not oversubscribe the cores."""
    return max(1, (os.cpu_count() or 1) // instances)


def check_repository_dir(repo_dir: str | os.PathLike[str]) -> None:
    """Raise :class:`AcfdError` unless ``repo_dir`` is new, empty, or a repository of ours
    (which is then rewritten). Writes nothing: call it before a long export."""
    repo = Path(repo_dir)
    if repo.exists() and not repo.is_dir():
        raise AcfdError(f"{repo} exists and is not a folder")
    if repo.is_dir():
        ours = {END_TO_END, ENGINE, E2E, "README.md", "acfd-repository.json"}
        foreign = sorted(p.name for p in repo.iterdir() if p.name not in ours and not p.name.startswith("."))
        if foreign:
            raise AcfdError(f"{repo} already holds {', '.join(foreign[:3])}: give an empty or new folder for the model repository")


def fresh_dir(repo: Path, names: Iterable[str]) -> None:
    """Refuse to write over a folder that holds something other than a repository of ours."""
    check_repository_dir(repo)
    repo.mkdir(parents=True, exist_ok=True)
    for name in names:
        if (repo / name).exists():
            shutil.rmtree(repo / name)


def write_end_to_end(repo: Path, params: ModelParams, *, max_batch: int, queue_delay_us: int, instances: int, where: str) -> None:
    """``acfd``: one model.py in both repositories; ``params.engine`` says where the network runs."""
    if params.bls_model:
        runs = f"the network in {params.bls_model} through BLS"
    else:
        runs = f"the network too ({params.artifact if is_url(params.artifact) else Path(params.artifact).name})"
    comment = [
        "acfd: encoded image bytes -> the detections acfd-detect writes (original image pixels).",
        f"Python backend: decoding, resizing and post-processing here, {runs}.",
        where,
    ]
    text = end_to_end_config(
        comment=comment, max_batch=max_batch, queue_delay_us=queue_delay_us, instances=instances, params=params.to_parameters()
    )
    _write_python_model(repo, END_TO_END, END_TO_END, text)


def _write_raw_engine(repo: Path, params: ModelParams, shown: str, max_batch: int, queue_delay_us: int, instances: int) -> None:
    _write_python_model(
        repo,
        ENGINE,
        ENGINE,
        engine_config(
            head=['backend: "python"'],
            comment=[
                "acfd_engine: the raw ACFD network, images FP32 [3,-1,-1] RGB 0..255 -> boxes [-1,4], scores [-1].",
                "Written by acfd-serve for PyTriton's bundled tritonserver, which has only the Python backend:",
                f"this model runs {shown} in the backend's Python process with acfd-deploy's runner.",
                "For the stock server, acfd-export --triton-repo writes the engine as onnxruntime_onnx / tensorrt_plan.",
            ],
            max_batch=max_batch,
            queue_delay_us=queue_delay_us,
            instance_group=f"{{ count: {instances} kind: KIND_CPU }}",
            params=params.to_parameters(),
        ),
    )


def _write_pixels_model(repo: Path, params: ModelParams, shown: str, max_batch: int, queue_delay_us: int, instances: int) -> None:
    _write_python_model(
        repo,
        E2E,
        E2E,
        e2e_config(
            head=['backend: "python"'],
            comment=[
                "acfd_e2e: the end-to-end graph, images UINT8 [-1,-1,3] RGB as decoded -> num_dets, det_boxes, det_scores.",
                "Written by acfd-serve for PyTriton's bundled tritonserver, which has only the Python backend:",
                f"this model runs {shown} in the backend's Python process with acfd-deploy's runner. The stock server",
                "runs the same file with no Python (acfd-export --end2end --triton-repo: onnxruntime_onnx / tensorrt_plan).",
                "The dynamic batcher merges only requests of the same H and W.",
            ],
            max_batch=max_batch,
            queue_delay_us=queue_delay_us,
            instance_group=f"{{ count: {instances} kind: KIND_CPU }}",
            params=params.to_parameters(),
        ),
    )


def write_serve_repository(
    repo_dir: str | os.PathLike[str],
    model: str | os.PathLike[str],
    *,
    max_batch: int = DEFAULT_MAX_BATCH,
    max_queue_delay_us: int = DEFAULT_QUEUE_DELAY_US,
    instances: int = 1,
    scales: tuple[tuple[int, int], ...] = (DEFAULT_SCALE,),
    keep_ratio: bool = False,
    conf: float = 0.0,
    device: str = "auto",
    precision: str = "unknown",
    min_size: int = DEFAULT_MIN_SIZE,
    threads: int = 0,
    end_to_end_via_bls: bool = False,
    end_to_end_engine: bool = False,
) -> Path:
    """The repository acfd-serve hands its bundled server. ``acfd_engine``: a Python-backend
    model running ``model`` (any reference acfd-detect takes: a file, made absolute, or a
    ``triton://`` URL) with acfd-deploy's runner registry on ``device``, in place of the
    stock server's ONNX Runtime / TensorRT backends, which the bundled server lacks.
    ``acfd``: the end-to-end model (the stock repository's model.py), running the model in
    its own process; with ``end_to_end_via_bls`` it calls ``acfd_engine`` through BLS
    instead, exactly as on the stock server (to test that path here).

    ``end_to_end_engine``: ``model`` is an end-to-end graph (acfd-export --end2end), which
    has no raw network to serve: ``acfd_e2e`` (decoded pixels in, faces out, the stock
    repository's contract) takes the place of ``acfd_engine``, and ``acfd`` only decodes
    before the graph."""
    check_common(max_batch, max_queue_delay_us, instances)
    if end_to_end_engine and end_to_end_via_bls:
        raise AcfdError("an end-to-end engine has no raw network for acfd to call through BLS")
    repo = Path(repo_dir)
    artifact = str(model) if is_url(model) else str(Path(model).resolve())
    shown = artifact if is_url(model) else Path(artifact).name
    fresh_dir(repo, [END_TO_END, ENGINE, E2E])
    engine_params = ModelParams(artifact=artifact, device=device, precision=precision, min_size=min_size, threads=threads)
    if end_to_end_engine:
        _write_pixels_model(repo, engine_params, shown, max_batch, max_queue_delay_us, instances)
    else:
        _write_raw_engine(repo, engine_params, shown, max_batch, max_queue_delay_us, instances)
    e2e = ModelParams(
        artifact="" if end_to_end_via_bls else artifact,
        device=device,
        precision=precision,
        min_size=min_size,
        scales=scales,
        keep_ratio=keep_ratio,
        conf=conf,
        threads=threads,
        engine=BLS_PREFIX + ENGINE if end_to_end_via_bls else LOCAL_ENGINE,
    )
    write_end_to_end(
        repo,
        e2e,
        max_batch=max_batch,
        queue_delay_us=max_queue_delay_us,
        instances=instances,
        where="Written by acfd-serve (bundled server); the stock repository's acfd is this model.py with engine bls:acfd_engine.",
    )
    return repo

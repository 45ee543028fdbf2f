"""Triton model repositories: folders of ``<model>/config.pbtxt`` + ``<model>/1/<file>``.

Two kinds, kept apart because they run different code:

* :func:`write_model_repository`, for the **stock** Triton server (the NGC container, GPU
  nodes, Kubernetes): ``acfd_engine`` is the verified artifact itself, byte for byte, as
  ``model.plan`` (platform ``tensorrt_plan``) or ``model.onnx`` (``onnxruntime_onnx``),
  plus a README on running and scaling it. Optionally the end-to-end ``acfd`` (Python
  backend) calling that engine through BLS.
* :func:`write_serve_repository`, for the server acfd-serve starts (PyTriton's bundled
  ``tritonserver``, which has only the Python backend): ``acfd`` and ``acfd_engine`` are
  both Python-backend models running the artifact with acfd-deploy's own runner. Same
  inputs and outputs as the stock models; different machinery, said in each config.

The configs are written as protobuf text by hand (no protobuf or tritonclient needed to
export); the tests parse every one as Triton's ``ModelConfig``.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from acfd_deploy.errors import AcfdError
from acfd_deploy.fileio import atomic_path, sha256_file
from acfd_deploy.pipeline.detector import DEFAULT_SCALE
from acfd_deploy.pipeline.preprocess import DEFAULT_MIN_SIZE
from acfd_deploy.serve.handlers import MAX_DETECTIONS
from acfd_deploy.serve.params import BLS_PREFIX, LOCAL_ENGINE, ModelParams

END_TO_END = "acfd"
ENGINE = "acfd_engine"
DEFAULT_MAX_BATCH = 8
DEFAULT_QUEUE_DELAY_US = 2000
_PRECISIONS = ("fp32", "fp16", "int8")


# ---------------------------------------------------------------- protobuf text


def pbtxt_string(text: str) -> str:
    """A protobuf text-format string literal."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def preferred_batch_sizes(max_batch: int) -> list[int]:
    """Half and full ``max_batch`` (e.g. 4 and 8): the batcher waits up to the queue delay
    to fill one of them, and otherwise runs what it has."""
    return sorted({b for b in (max_batch // 2, max_batch) if b >= 2})


def _tensor(name: str, dtype: str, dims: Sequence[int]) -> str:
    return f"  {{ name: {pbtxt_string(name)} data_type: {dtype} dims: [ {', '.join(str(d) for d in dims)} ] }}"


def _parameters(params: Mapping[str, str]) -> list[str]:
    return [f"parameters {{ key: {pbtxt_string(k)} value {{ string_value: {pbtxt_string(v)} }} }}" for k, v in sorted(params.items())]


def _batching(max_batch: int, queue_delay_us: int) -> list[str]:
    preferred = preferred_batch_sizes(max_batch)
    lines = ["dynamic_batching {"]
    if preferred:
        lines.append(f"  preferred_batch_size: [ {', '.join(map(str, preferred))} ]")
    lines += [f"  max_queue_delay_microseconds: {queue_delay_us}", "}"]
    return lines


def _config_text(
    name: str,
    comment: Iterable[str],
    head: Sequence[str],
    max_batch: int,
    inputs: Sequence[str],
    outputs: Sequence[str],
    queue_delay_us: int,
    instance_group: str,
    params: Mapping[str, str],
    tail: Sequence[str] = (),
) -> str:
    lines = [f"# {c}" if c else "#" for c in comment]
    lines += [f"name: {pbtxt_string(name)}", *head, f"max_batch_size: {max_batch}"]
    lines += ["input [", ",\n".join(inputs), "]", "output [", ",\n".join(outputs), "]"]
    lines += _batching(max_batch, queue_delay_us)
    lines += [f"instance_group [ {instance_group} ]", *_parameters(params), *tail]
    return "\n".join(lines) + "\n"


ENGINE_INPUTS = [_tensor("images", "TYPE_FP32", [3, -1, -1])]
ENGINE_OUTPUTS = [_tensor("boxes", "TYPE_FP32", [-1, 4]), _tensor("scores", "TYPE_FP32", [-1])]
# TYPE_STRING is Triton's config name for the BYTES wire type
END_TO_END_INPUTS = [_tensor("image", "TYPE_STRING", [1])]
END_TO_END_OUTPUTS = [
    _tensor("num_dets", "TYPE_INT32", [1]),
    _tensor("det_boxes", "TYPE_FP32", [MAX_DETECTIONS, 4]),
    _tensor("det_scores", "TYPE_FP32", [MAX_DETECTIONS]),
]


def engine_config(
    *,
    head: Sequence[str],
    comment: Iterable[str],
    max_batch: int,
    queue_delay_us: int,
    instance_group: str,
    params: Mapping[str, str],
    warmup_hw: tuple[int, int] | None = None,
) -> str:
    tail: list[str] = []
    if warmup_hw is not None:  # the first real request should not pay for kernel selection
        h, w = warmup_hw
        tail = [
            "model_warmup [ {",
            '  name: "zeros" batch_size: 1',
            f'  inputs {{ key: "images" value {{ data_type: TYPE_FP32 dims: [ 3, {h}, {w} ] zero_data: true }} }}',
            "} ]",
        ]
    return _config_text(ENGINE, comment, head, max_batch, ENGINE_INPUTS, ENGINE_OUTPUTS, queue_delay_us, instance_group, params, tail)


def end_to_end_config(*, comment: Iterable[str], max_batch: int, queue_delay_us: int, instances: int, params: Mapping[str, str]) -> str:
    return _config_text(
        END_TO_END,
        comment,
        ['backend: "python"'],
        max_batch,
        END_TO_END_INPUTS,
        END_TO_END_OUTPUTS,
        queue_delay_us,
        f"{{ count: {instances} kind: KIND_CPU }}",
        params,
    )


# ---------------------------------------------------------------- files


def _model_source(name: str) -> bytes:
    return resources.files("acfd_deploy.serve.models").joinpath(name, "model.py").read_bytes()


def _write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _write_python_model(repo: Path, name: str, source: str, config: str) -> None:
    with atomic_path(repo / name / "1" / "model.py") as tmp:
        tmp.write_bytes(_model_source(source))
    _write_text(repo / name / "config.pbtxt", config)


def _check_common(max_batch: int, queue_delay_us: int, instances: int) -> None:
    if max_batch < 1:
        raise AcfdError(f"max batch must be at least 1, got {max_batch}")
    if queue_delay_us < 0:
        raise AcfdError(f"the queue delay must not be negative, got {queue_delay_us} us")
    if instances < 1:
        raise AcfdError(f"instances must be at least 1, got {instances}")


def check_repository_dir(repo_dir: str | os.PathLike[str]) -> None:
    """Raise :class:`AcfdError` unless ``repo_dir`` is new, empty, or a repository of ours
    (which is then rewritten). Writes nothing: call it before a long export."""
    repo = Path(repo_dir)
    if repo.exists() and not repo.is_dir():
        raise AcfdError(f"{repo} exists and is not a folder")
    if repo.is_dir():
        ours = {END_TO_END, ENGINE, "README.md", "acfd-repository.json"}
        foreign = sorted(p.name for p in repo.iterdir() if p.name not in ours and not p.name.startswith("."))
        if foreign:
            raise AcfdError(f"{repo} already holds {', '.join(foreign[:3])}: give an empty or new folder for the model repository")


def _fresh_dir(repo: Path, names: Iterable[str]) -> None:
    """Refuse to write over a folder that holds something other than a repository of ours."""
    check_repository_dir(repo)
    repo.mkdir(parents=True, exist_ok=True)
    for name in names:
        if (repo / name).exists():
            shutil.rmtree(repo / name)


def _end_to_end(repo: Path, params: ModelParams, *, max_batch: int, queue_delay_us: int, instances: int, where: str) -> None:
    """``acfd``: one model.py in both repositories; ``params.engine`` says where the network runs."""
    runs = f"the network in {params.bls_model} through BLS" if params.bls_model else f"the network too ({Path(params.artifact).name})"
    comment = [
        "acfd: encoded image bytes -> the detections acfd-detect writes (original image pixels).",
        f"Python backend: decoding, resizing and post-processing here, {runs}.",
        where,
    ]
    text = end_to_end_config(
        comment=comment, max_batch=max_batch, queue_delay_us=queue_delay_us, instances=instances, params=params.to_parameters()
    )
    _write_python_model(repo, END_TO_END, END_TO_END, text)


def write_serve_repository(
    repo_dir: str | os.PathLike[str],
    artifact_path: str | os.PathLike[str],
    *,
    max_batch: int = DEFAULT_MAX_BATCH,
    max_queue_delay_us: int = DEFAULT_QUEUE_DELAY_US,
    instances: int = 1,
    scales: tuple[tuple[int, int], ...] = (DEFAULT_SCALE,),
    keep_ratio: bool = False,
    conf: float = 0.0,
    device: str = "cpu",
    precision: str = "unknown",
    min_size: int = DEFAULT_MIN_SIZE,
    threads: int = 0,
    end_to_end_via_bls: bool = False,
) -> Path:
    """The repository acfd-serve hands its bundled server. ``acfd_engine``: a Python-backend
    model running ``artifact_path`` (any file acfd-detect takes) with acfd-deploy's runner,
    in place of the stock server's ONNX Runtime / TensorRT backends, which the bundled server
    lacks. ``acfd``: the end-to-end model (the stock repository's model.py), running the
    artifact in its own process; with ``end_to_end_via_bls`` it calls ``acfd_engine``
    through BLS instead, exactly as on the stock server (to test that path here)."""
    _check_common(max_batch, max_queue_delay_us, instances)
    repo = Path(repo_dir)
    artifact = Path(artifact_path).resolve()
    _fresh_dir(repo, [END_TO_END, ENGINE])
    engine_params = ModelParams(artifact=str(artifact), device=device, precision=precision, min_size=min_size, threads=threads)
    _write_python_model(
        repo,
        ENGINE,
        ENGINE,
        engine_config(
            head=['backend: "python"'],
            comment=[
                "acfd_engine: the raw ACFD network, images FP32 [3,-1,-1] RGB 0..255 -> boxes [-1,4], scores [-1].",
                "Written by acfd-serve for PyTriton's bundled tritonserver, which has only the Python backend:",
                f"this model runs {artifact.name} in the backend's Python process with acfd-deploy's runner.",
                "For the stock server, acfd-export --triton-repo writes the engine as onnxruntime_onnx / tensorrt_plan.",
            ],
            max_batch=max_batch,
            queue_delay_us=max_queue_delay_us,
            instance_group=f"{{ count: {instances} kind: KIND_CPU }}",
            params=engine_params.to_parameters(),
        ),
    )
    e2e = ModelParams(
        artifact="" if end_to_end_via_bls else str(artifact),
        device=device,
        precision=precision,
        min_size=min_size,
        scales=scales,
        keep_ratio=keep_ratio,
        conf=conf,
        threads=threads,
        engine=BLS_PREFIX + ENGINE if end_to_end_via_bls else LOCAL_ENGINE,
    )
    _end_to_end(
        repo,
        e2e,
        max_batch=max_batch,
        queue_delay_us=max_queue_delay_us,
        instances=instances,
        where="Written by acfd-serve (bundled server); the stock repository's acfd is this model.py with engine bls:acfd_engine.",
    )
    return repo


# ---------------------------------------------------------------- stock server


def onnx_min_size(path: Path) -> int:
    """The network's minimum input side, from the ``input`` metadata acfd-export writes."""
    try:
        from acfd_deploy.export.onnx_export import read_metadata

        return int(json.loads(read_metadata(path).get("input", "{}")).get("min_side", DEFAULT_MIN_SIZE))
    except Exception:
        return DEFAULT_MIN_SIZE


def _artifact_facts(artifact: Path, precision: str | None) -> dict[str, Any]:
    """Platform, file name, precision, batch/size limits and minimum side of an artifact."""
    suffix = artifact.suffix.lower()
    if suffix == ".plan":
        from acfd_deploy.export.tensorrt import read_sidecar

        sidecar = read_sidecar(artifact)
        profile = sidecar["profile"]
        found = str(sidecar.get("precision", "fp32"))
        return {
            "platform": "tensorrt_plan",
            "file": "model.plan",
            "precision": found,
            "profile": profile,
            "min_size": int(min(profile["min"][2:])),
            "tensorrt_version": sidecar.get("tensorrt_version"),
            "gpu": sidecar.get("gpu"),
            "compute_capability": sidecar.get("compute_capability"),
        }
    if suffix == ".onnx":
        from acfd_deploy.runtime.onnx_runner import precision_of

        return {
            "platform": "onnxruntime_onnx",
            "file": "model.onnx",
            "precision": precision_of(artifact),
            "profile": None,
            "min_size": onnx_min_size(artifact),
        }
    raise AcfdError(f"the stock Triton server takes a .onnx or .plan artifact, not {artifact.name}")


def choose_artifact(export_dir: str | os.PathLike[str], precision: str = "fp32", prefer_plan: bool = True) -> Path:
    """The verified artifact of ``precision`` in an acfd-export folder (its ``export.json``):
    the TensorRT plan where one was built and passed parity, else the ONNX file."""
    out = Path(export_dir)
    manifest_path = out / "export.json"
    if not manifest_path.is_file():
        raise AcfdError(f"{out} has no export.json: run acfd-export first")
    manifest = json.loads(manifest_path.read_text())
    candidates = {
        a["kind"]: out / a["path"]
        for a in manifest.get("artifacts", [])
        if a.get("precision") == precision and a.get("kind") in ("onnx", "tensorrt") and a.get("parity", {}).get("passed") and a.get("path")
    }
    for kind in ("tensorrt", "onnx") if prefer_plan else ("onnx",):
        if kind in candidates and candidates[kind].is_file():
            return candidates[kind]
    raise AcfdError(f"{out} holds no verified {precision} ONNX or TensorRT artifact (see its export.json)")


def _verified_sha(artifact: Path) -> str | None:
    """The artifact's sha256 as recorded in the export.json beside it, if there is one."""
    manifest_path = artifact.parent / "export.json"
    if not manifest_path.is_file():
        return None
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    for a in manifest.get("artifacts", []):
        if a.get("path") == artifact.name:
            if not a.get("parity", {}).get("passed"):
                raise AcfdError(f"{artifact.name} failed its parity check (export.json); it is not served")
            return a.get("sha256")
    return None


def write_model_repository(
    repo_dir: str | os.PathLike[str],
    artifact_path: str | os.PathLike[str],
    *,
    precision: str | None = None,
    max_batch: int | None = None,
    imgsz: tuple[int, int] | None = None,
    instances: int = 1,
    max_queue_delay_us: int = DEFAULT_QUEUE_DELAY_US,
    end_to_end: bool = False,
    scales: tuple[tuple[int, int], ...] = (DEFAULT_SCALE,),
    keep_ratio: bool = False,
) -> Path:
    """A model repository for the stock ``tritonserver --model-repository DIR``.

    ``acfd_engine/1/model.plan`` (``tensorrt_plan``, one instance per GPU) or
    ``acfd_engine/1/model.onnx`` (``onnxruntime_onnx``; GPU where the server has one, else
    CPU), copied byte for byte and checked against the sha256 in the ``export.json`` beside
    it. ``max_batch_size``: ``max_batch``, or the plan's profile (which also caps it), or
    :data:`DEFAULT_MAX_BATCH` for ONNX. ``imgsz`` (H, W): the warm-up request's size.
    ``end_to_end`` adds ``acfd`` (Python backend, BLS to the engine; needs acfd-deploy
    installed in the server's Python). Returns the repository folder.
    """
    artifact = Path(artifact_path)
    if not artifact.is_file():
        raise AcfdError(f"artifact not found: {artifact}")
    facts = _artifact_facts(artifact, precision)
    if precision is not None and precision != facts["precision"]:
        raise AcfdError(f"{artifact.name} is {facts['precision']}, not {precision}")
    profile = facts["profile"]
    if profile is not None:
        cap = int(profile["max"][0])
        if max_batch is not None and max_batch > cap:
            raise AcfdError(f"{artifact.name} was built for batches up to {cap}; rebuild it with acfd-export --batch {max_batch}")
        batch = max_batch or cap
    else:
        batch = max_batch or DEFAULT_MAX_BATCH
    _check_common(batch, max_queue_delay_us, instances)
    warmup_hw: tuple[int, int] = (int(imgsz[0]), int(imgsz[1])) if imgsz else DEFAULT_SCALE
    if imgsz is None and profile is not None:
        warmup_hw = (int(profile["opt"][2]), int(profile["opt"][3]))
    repo = Path(repo_dir)
    _fresh_dir(repo, [ENGINE, END_TO_END])

    target = repo / ENGINE / "1" / facts["file"]
    with atomic_path(target) as tmp:
        shutil.copyfile(artifact, tmp)
    digest = sha256_file(target)
    recorded = _verified_sha(artifact)
    if recorded is not None and recorded != digest:
        target.unlink()
        raise AcfdError(f"{artifact.name} does not match the sha256 in its export.json: it changed after it was verified")

    plan = facts["platform"] == "tensorrt_plan"
    params = {"precision": facts["precision"], "min_size": str(facts["min_size"]), "source": artifact.name, "sha256": digest}
    comment = [
        f"acfd_engine: the raw ACFD network ({facts['precision']}), {artifact.name} byte for byte, for the stock Triton server.",
        "images FP32 [3,-1,-1] RGB 0..255 -> boxes FP32 [-1,4] xyxy input pixels, scores FP32 [-1] 0..1.",
    ]
    if plan:
        comment.append(f"Built with TensorRT {facts['tensorrt_version']} on {facts['gpu']}: it runs only there (see README.md).")
    _write_text(
        repo / ENGINE / "config.pbtxt",
        engine_config(
            head=[f"platform: {pbtxt_string(facts['platform'])}", f"default_model_filename: {pbtxt_string(facts['file'])}"],
            comment=comment,
            max_batch=batch,
            queue_delay_us=max_queue_delay_us,
            # a plan runs on a GPU only; ONNX without a kind goes to the GPUs where the
            # server has them and to the CPU where it has none
            instance_group=f"{{ count: {instances} kind: KIND_GPU }}" if plan else f"{{ count: {instances} }}",
            params=params,
            warmup_hw=warmup_hw,
        ),
    )
    if end_to_end:
        e2e = ModelParams(
            precision=facts["precision"], min_size=facts["min_size"], scales=scales, keep_ratio=keep_ratio, engine=BLS_PREFIX + ENGINE
        )
        _end_to_end(
            repo,
            e2e,
            max_batch=batch,
            queue_delay_us=max_queue_delay_us,
            instances=instances,
            where="Needs acfd-deploy (and torch) installed in the server's Python; see README.md.",
        )
    record = {
        "format": "acfd-triton-repository/1",
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "artifact": artifact.name,
        "sha256": digest,
        "platform": facts["platform"],
        "precision": facts["precision"],
        "max_batch_size": batch,
        "profile": profile,
        "tensorrt_version": facts.get("tensorrt_version"),
        "gpu": facts.get("gpu"),
        "models": [ENGINE, *([END_TO_END] if end_to_end else [])],
    }
    _write_text(repo / "acfd-repository.json", json.dumps(record, indent=2) + "\n")
    _write_text(repo / "README.md", repository_readme(record, facts, end_to_end, instances))
    return repo


def repository_readme(record: Mapping[str, Any], facts: Mapping[str, Any], end_to_end: bool, instances: int) -> str:
    """How to run this repository on the stock server, scale it out and use it."""
    plan = record["platform"] == "tensorrt_plan"
    lines = [
        "# ACFD model repository for Triton Inference Server",
        "",
        f"Written by acfd-export from `{record['artifact']}` ({record['precision']}, sha256 `{record['sha256'][:16]}...`),",
        f"copied byte for byte as `{ENGINE}/1/{facts['file']}` (platform `{record['platform']}`, max batch {record['max_batch_size']},",
        "dynamic batching).",
        "",
        "| model | input | outputs |",
        "|---|---|---|",
        f"| `{ENGINE}` | `images` FP32 [3, H, W] RGB 0..255 | `boxes` FP32 [N, 4] xyxy input pixels, `scores` FP32 [N] |",
    ]
    if end_to_end:
        lines.append(
            f"| `{END_TO_END}` | `image` BYTES [1]: a JPEG/PNG/BMP/WebP file's bytes | `num_dets` INT32 [1], "
            f"`det_boxes` FP32 [{MAX_DETECTIONS}, 4] image pixels, `det_scores` FP32 [{MAX_DETECTIONS}] |"
        )
    lines += ["", "## Run", ""]
    if plan:
        lines += [
            f"A TensorRT plan runs only with the TensorRT version and GPU that built it: TensorRT {facts.get('tensorrt_version')},",
            f"{facts.get('gpu')} (compute capability {facts.get('compute_capability')}). Use the `tritonserver` container release",
            "whose TensorRT is that version (NVIDIA's frameworks support matrix lists it), on that GPU model; otherwise",
            "rebuild the plan there with acfd-export, or serve the ONNX file instead.",
            "",
        ]
    lines += [
        "```bash",
        "docker run --rm --gpus all -p 8000:8000 -p 8001:8001 -p 8002:8002 \\",
        '  -v "$PWD":/models nvcr.io/nvidia/tritonserver:<yy.mm>-py3 \\',
        "  tritonserver --model-repository=/models",
        "curl -s localhost:8000/v2/health/ready && echo ready",
        f"curl -s localhost:8000/v2/models/{ENGINE}/config",
        "```",
        "",
        "The ports: 8000 HTTP/REST, 8001 gRPC, 8002 Prometheus metrics. With GPUs, Triton puts the instances on",
        "each GPU." + ("" if plan else " On a host without one, leave out `--gpus all`: the ONNX engine then runs on the CPU."),
        "",
        "## Point acfd-detect (acfd-eval, acfd-bench) at it",
        "",
        "```bash",
        f"acfd-detect images/ --model triton://localhost:8001/{ENGINE}",
        "```",
        "",
        "Decoding, resizing and post-processing run on the client, the network on the server; the detections",
        "are those of the same file run in-process.",
        "",
    ]
    if end_to_end:
        lines += [
            f"## The end-to-end model `{END_TO_END}`",
            "",
            "It is a Python-backend model: the server's Python needs acfd-deploy. Build an image once:",
            "",
            "```dockerfile",
            "FROM nvcr.io/nvidia/tritonserver:<yy.mm>-py3",
            "COPY acfd_deploy-*.whl /tmp/",
            "RUN pip install /tmp/acfd_deploy-*.whl  # brings torch, numpy, pillow",
            "```",
            "",
            "A client sends a file's bytes (`image`, BYTES, shape [1, 1]) and reads `num_dets`, `det_boxes`, `det_scores`;",
            f"see docs/serving.md of acfd-deploy. Without acfd-deploy in the image, `{END_TO_END}` fails to load: delete its",
            "folder, or start the server with `--model-control-mode=explicit --load-model=acfd_engine`.",
            "",
            f"On SIGTERM, Triton (2.51 checked) refuses new BLS calls, so `{END_TO_END}` requests still waiting for the",
            f"engine fail (`Server not ready`) instead of draining. If that matters, unload `{END_TO_END}` first in a",
            f"pre-stop hook (explicit model control: `POST /v2/repository/models/{END_TO_END}/unload`, which waits for",
            "its in-flight requests), then stop the server.",
            "",
        ]
    lines += [
        "## Scale out",
        "",
        f"* **Instances per GPU**: `instance_group [ {{ count: {instances} ... }} ]` in `{ENGINE}/config.pbtxt`; two to",
        "  four instances let one GPU overlap copies and compute. Dynamic batching (`max_queue_delay_microseconds`,",
        "  `preferred_batch_size`) merges concurrent requests into one batch: the knob that buys throughput on a GPU.",
        "* **Replicas**: run N identical servers on this repository behind a load balancer (a Kubernetes Deployment",
        "  with `replicas: N`). Readiness probe: `GET /v2/health/ready` on 8000; liveness: `GET /v2/health/live`.",
        "  gRPC keeps HTTP/2 connections open, so balance it per request (an L7 proxy or a service mesh), not per",
        "  connection. Put the repository on shared storage (`--model-repository=s3://bucket/path`, `gs://...`) or",
        "  bake it into the image.",
        "* **Model control**: `--model-control-mode=explicit --load-model=acfd_engine` loads only what you name;",
        "  `POST /v2/repository/models/acfd_engine/load` reloads it after you replace the file (a new version",
        "  folder `2/` rolls forward without a restart).",
        "* **Metrics**: `GET :8002/metrics` (Prometheus). `nv_inference_count / nv_inference_exec_count` is the mean",
        "  executed batch; `nv_inference_queue_duration_us` the time waiting for a batch or an instance (scale out",
        "  when it grows); `nv_gpu_utilization` per GPU. Per-model counters: `GET /v2/models/acfd_engine/stats`.",
        "",
    ]
    return "\n".join(lines)

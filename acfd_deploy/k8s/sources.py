"""What runs in the pod, for each way in: the stock ``tritonserver`` on a model repository
acfd-export wrote (its ``acfd-repository.json`` says which models and which artifact), or
the acfd-serve image on an export folder."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from acfd_deploy.errors import AcfdError
from acfd_deploy.k8s.objects import GRPC_PORT, HTTP_PORT, METRICS_PORT, K8sOptions, Workload

REPOSITORY_RECORD = "acfd-repository.json"
MODELS_MOUNT = "/models"


def read_repository_record(repo_dir: str | os.PathLike[str]) -> dict[str, Any]:
    path = Path(repo_dir) / REPOSITORY_RECORD
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        raise AcfdError(f"{repo_dir} is not a model repository written by acfd-export (no {REPOSITORY_RECORD})") from None
    except (OSError, ValueError) as exc:
        raise AcfdError(f"{path}: unreadable ({exc})") from None
    if not isinstance(record, dict) or not record.get("sha256") or not record.get("models"):
        raise AcfdError(f"{path} has no sha256 or models: write the repository again with acfd-export")
    return record


def triton_workload(record: dict[str, Any], opts: K8sOptions) -> Workload:
    """The stock server with explicit model control: it loads the repository's models by
    name (nothing else in the volume is taken for a model) and drains for the drain timeout."""
    models = [str(m) for m in record["models"]]
    args = [
        f"--model-repository={MODELS_MOUNT}",
        "--model-control-mode=explicit",
        *(f"--load-model={m}" for m in models),
        "--strict-readiness=true",
        f"--exit-timeout-secs={opts.drain_timeout_s}",
        f"--http-port={HTTP_PORT}",
        f"--grpc-port={GRPC_PORT}",
        f"--metrics-port={METRICS_PORT}",
    ]
    return Workload(command=["tritonserver"], args=args, mount_path=MODELS_MOUNT, sha256=str(record["sha256"]), models=models)


def serve_workload(model_name: str | None, sha256: str, opts: K8sOptions, extra_args: list[str]) -> Workload:
    """acfd-serve on every interface of the pod, serving ``/models/<model_name>`` (the
    export folder on the volume, ``export.json`` beside the file, so ``--require-verified``
    can hold it to its verdict); ``model_name`` None: the bundled demo model."""
    args = ["--host", "0.0.0.0", "--drain-timeout", str(opts.drain_timeout_s)]
    if model_name is not None:
        args += ["--model", f"{MODELS_MOUNT}/{model_name}", "--require-verified"]
    return Workload(command=["acfd-serve"], args=args + extra_args, mount_path=MODELS_MOUNT, sha256=sha256, models=["acfd", "acfd_engine"])

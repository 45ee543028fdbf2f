"""The README.md inside a repository for the stock Triton server: how to run it, point
acfd-detect at it, run the end-to-end model, and scale it out."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from acfd_deploy.tritonrepo.pbtxt import END_TO_END, ENGINE, MAX_DETECTIONS


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

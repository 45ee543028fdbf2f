"""The README.md inside a repository for the stock Triton server: how to run it, point
acfd-detect at it, run the end-to-end model, and scale it out."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from acfd_deploy.tritonrepo.pbtxt import E2E, END_TO_END, ENGINE, MAX_DETECTIONS

# the client the README gives for acfd_e2e; tests run it against a server (URL, FILE replaced)
E2E_CLIENT = """import numpy as np
import tritonclient.http as httpclient
from PIL import Image, ImageOps

URL, FILE = "localhost:8000", "photo.jpg"
# EXIF orientation applied, RGB: acfd-detect's decoding of a JPEG (for transparency and
# 16-bit files, acfd_deploy.pipeline.io.decode_image does all of it)
image = ImageOps.exif_transpose(Image.open(FILE)).convert("RGB")
pixels = np.asarray(image, dtype=np.uint8)[None]  # [1, H, W, 3]

client = httpclient.InferenceServerClient(URL)
images = httpclient.InferInput("images", list(pixels.shape), "UINT8")
images.set_data_from_numpy(pixels)
result = client.infer("acfd_e2e", [images])
n = int(result.as_numpy("num_dets")[0, 0])
for (x1, y1, x2, y2), score in zip(result.as_numpy("det_boxes")[0, :n], result.as_numpy("det_scores")[0, :n]):
    print(f"{score:.3f} {x1:.1f} {y1:.1f} {x2:.1f} {y2:.1f}")
"""


def _e2e_section(e2e: Mapping[str, Any]) -> list[str]:
    scales = e2e.get("scales")
    shown = " + ".join(f"{h}x{w}" for h, w in scales) if scales else "the scales it was exported with"
    return [
        f"## `{E2E}`: image to faces with no Python backend",
        "",
        f"`{E2E}/1/{e2e['file']}` is `{e2e['artifact']}` (sha256 `{e2e['sha256'][:16]}...`), the end-to-end graph of",
        f"acfd-export --end2end, platform `{e2e['platform']}`: the stock server runs it with its own backend, nothing of",
        f"acfd-deploy installed. The graph resizes each image to {shown}, normalizes, runs the network, decodes,",
        "keeps the top 1,000 per scale with score > 0.08, maps boxes back to the image's pixels, merges the scales and",
        f"runs NMS (IoU 0.55), top {e2e['max_det']}. A client sends decoded pixels (uint8, 4x less than float32) and",
        "reads the faces:",
        "",
        "```python",
        *E2E_CLIENT.rstrip("\n").split("\n"),
        "```",
        "",
        "Requests are `images` UINT8 [n, H, W, 3] (several images of one size per request work too). Triton's dynamic",
        f"batcher merges only requests of the same H and W (max batch {e2e['max_batch_size']}); requests of other sizes run",
        "as batches of their own, so batching pays off for same-size streams (a camera, a resized feed). A wrong",
        "dtype, rank or channel count is refused by the server against config.pbtxt, for that request only.",
        "",
    ]


def repository_readme(
    record: Mapping[str, Any], facts: Mapping[str, Any], end_to_end: bool, instances: int, e2e: Mapping[str, Any] | None = None
) -> str:
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
    if e2e:
        lines.append(
            f"| `{E2E}` | `images` UINT8 [H, W, 3] RGB as decoded | `num_dets` INT32 [1], `det_boxes` FP32 "
            f"[{e2e['max_det']}, 4] image pixels, `det_scores` FP32 [{e2e['max_det']}] |"
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
    if e2e:
        lines += _e2e_section(e2e)
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

"""acfd-serve under load: 1, 4 and 16 concurrent clients against the end-to-end model, and
the same artifact in-process at batch 1, in one run.

    .venv/bin/python benchmarks/serve_load.py --model exports/acfd-tiny-demo.onnx
    .venv/bin/python benchmarks/serve_load.py --model exports/acfd-tiny-demo.onnx \
        --e2e-model exports/acfd-tiny-demo.e2e.onnx --out benchmarks/results/serve_e2e_cpu

With ``--e2e-model`` (an end-to-end graph, acfd-export --end2end), a second acfd-serve
serves it as ``acfd``'s engine (its Python only decodes), and each client level runs
against the raw-engine server and then the end-to-end one, interleaved, in one run.

Starts acfd-serve's server (the same repository and launcher as the command) on free
127.0.0.1 ports, sends each client's JPEG files as gRPC ``acfd`` requests (bounded: at most
``--requests`` per level and ``--seconds`` per level), and reports per level: throughput
(images/s), p50 and p99 latency, and the mean executed batch size (Triton's statistics
endpoint: inferences / executions of ``acfd`` during the level). The in-process figure is
the acfd-detect path (decode, Detector at batch 1) on the same files, measured before the
server starts and again after it stops (a shared machine's load drifts; both are reported).
A dense matrix product is timed before and after, so a shared or throttled machine shows
in the report. Writes ``<out>.json`` and ``<out>.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from acfd_deploy.bench.timing import reference_workload  # noqa: E402
from acfd_deploy.envinfo import environment, package_version  # noqa: E402
from acfd_deploy.pipeline.detector import DEFAULT_SCALE, Detector, DetectorConfig  # noqa: E402
from acfd_deploy.pipeline.io import decode_image  # noqa: E402
from acfd_deploy.runtime.registry import load_runner  # noqa: E402
from acfd_deploy.serve.server import TritonServer, free_port  # noqa: E402
from acfd_deploy.tritonrepo.repository import instance_threads, write_serve_repository  # noqa: E402


def make_images(count: int, height: int, width: int, seed: int = 3) -> list[bytes]:
    """Synthetic cartoon scenes with faces, as JPEG files (what a client would send)."""
    from acfd_deploy.data.encoded import synthetic_jpegs

    return synthetic_jpegs(count, height, width, seed)


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def in_process(
    model: str, images: list[bytes], scales: tuple[tuple[int, int], ...], count: int, seconds: float, device: str = "cpu"
) -> dict[str, Any]:
    """acfd-detect's path for one file at a time: decode + Detector (batch 1)."""
    detector = Detector(load_runner(model, device=device), DetectorConfig(scales=scales, batch_size=1))
    detector.detect([decode_image(images[0])])  # warm-up
    latencies: list[float] = []
    start = time.perf_counter()
    while len(latencies) < count and time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        detector.detect([decode_image(images[len(latencies) % len(images)])])
        latencies.append(time.perf_counter() - t0)
    wall = time.perf_counter() - start
    return {
        "images": len(latencies),
        "seconds": round(wall, 2),
        "images_per_s": round(len(latencies) / wall, 3),
        "p50_ms": round(percentile(latencies, 50) * 1e3, 1),
        "p99_ms": round(percentile(latencies, 99) * 1e3, 1),
    }


def probe_scales(model: str, device: str = "cpu") -> tuple[tuple[int, int], ...] | None:
    """The test scales inside an end-to-end graph (None: a raw network), as acfd-serve reads them."""
    from acfd_deploy.serve.app import probe_model

    return probe_model(model, device)[2]


def network_only(model: str, scale: tuple[int, int], batch: int, rounds: int = 3, device: str = "cpu") -> dict[str, Any]:
    """The runner alone (no decoding, no post-processing): ms per image at batch 1 and at
    ``batch``, interleaved, median of ``rounds``. Says what batching can buy the network itself."""
    from acfd_deploy.data.synth import synthetic_batch

    runner = load_runner(model, device=device)
    x = synthetic_batch(batch, scale[0], scale[1], seed=5)
    runner.infer(x[:1])
    runner.infer(x)
    one, many = [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        runner.infer(x[:1])
        one.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        runner.infer(x)
        many.append((time.perf_counter() - t0) / batch)
    return {
        "batch": batch,
        "ms_per_image_batch1": round(float(np.median(one)) * 1e3, 1),
        "ms_per_image_batched": round(float(np.median(many)) * 1e3, 1),
    }


def _stats(client: Any) -> dict[str, int]:
    s = client.get_inference_statistics("acfd", as_json=True)["model_stats"][0]
    queue = s.get("inference_stats", {}).get("queue", {})
    return {
        "inferences": int(s.get("inference_count", 0)),
        "executions": int(s.get("execution_count", 0)),
        "queue_ns": int(queue.get("ns", 0)),
        "queue_count": int(queue.get("count", 0)),
    }


def load_level(grpc_url: str, images: list[bytes], clients: int, max_requests: int, seconds: float) -> dict[str, Any]:
    """``clients`` threads, each one request at a time (closed loop), until ``max_requests``
    in all or ``seconds`` have passed."""
    import tritonclient.grpc as grpcclient

    lock = threading.Lock()
    issued = [0]
    latencies: list[float] = []
    errors: list[str] = []
    deadline = time.monotonic() + seconds

    def worker() -> None:
        client = grpcclient.InferenceServerClient(grpc_url)
        while time.monotonic() < deadline:
            with lock:
                if issued[0] >= max_requests:
                    return
                i = issued[0]
                issued[0] += 1
            tensor = grpcclient.InferInput("image", [1, 1], "BYTES")
            tensor.set_data_from_numpy(np.asarray([[images[i % len(images)]]], dtype=object))
            t0 = time.perf_counter()
            try:
                client.infer("acfd", [tensor], client_timeout=max(10.0, seconds))
            except Exception as exc:  # noqa: BLE001  (counted and reported, not fatal)
                with lock:
                    errors.append(str(exc)[:200])
                continue
            with lock:
                latencies.append(time.perf_counter() - t0)
        client.close()

    stats_client = grpcclient.InferenceServerClient(grpc_url)
    before = _stats(stats_client)
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    after = _stats(stats_client)
    delta = {k: after[k] - before[k] for k in after}
    return {
        "clients": clients,
        "images": len(latencies),
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "seconds": round(wall, 2),
        "images_per_s": round(len(latencies) / wall, 3) if wall > 0 else 0.0,
        "p50_ms": round(percentile(latencies, 50) * 1e3, 1),
        "p99_ms": round(percentile(latencies, 99) * 1e3, 1),
        "mean_batch": round(delta["inferences"] / delta["executions"], 2) if delta["executions"] else None,
        "executions": delta["executions"],
        "mean_queue_ms": round(delta["queue_ns"] / delta["queue_count"] / 1e6, 1) if delta["queue_count"] else None,
    }


def markdown(result: dict[str, Any]) -> str:
    m, cfg = result["machine"], result["config"]
    scales = ", ".join(f"{h}x{w}" for h, w in cfg["scales"])
    lines = [
        f"# acfd-serve under load on CPU: {cfg['model']}, {scales}",
        "",
        f"CPU: {m['cpu']} ({m['cpu_count']} cores); Python {m['python']}, torch {m['torch']}, onnxruntime {m['onnxruntime']}, "
        f"tritonserver {m['tritonserver']} (nvidia-pytriton {m['nvidia_pytriton']}), tritonclient {m['tritonclient']}. "
        f"Measured {result['measured']}. Load average (1 min) {m['loadavg_before']} before, {m['loadavg_after']} after; "
        f"a 1024^3 fp32 matrix product ran at {m['matmul_gflops_before']} GFLOP/s before and {m['matmul_gflops_after']} after.",
        "",
        f"Server: acfd-serve's bundled tritonserver, model `acfd` (JPEG bytes in, detections out), max batch {cfg['max_batch']}, "
        f"queue delay {cfg['max_queue_delay_us']} us, {cfg['instances']} instance(s); clients on the same machine (gRPC, "
        f"127.0.0.1, closed loop: one request at a time each). Images: {cfg['images']} synthetic {cfg['image_size'][0]}x"
        f"{cfg['image_size'][1]} JPEG scenes.",
        "",
        "| Path | Engine | Clients | Images | Images/s | p50 latency | p99 latency | Mean executed batch | Mean queue |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for engine, key_before, key_after in (("raw", "in_process", "in_process_after"), ("e2e", "e2e_in_process", "e2e_in_process_after")):
        for key, when in ((key_before, "before the servers"), (key_after, "after the servers")):
            base = result.get(key)
            if base:
                lines.append(
                    f"| in-process (decode + Detector, batch 1), {when} | {engine} | 1 | {base['images']} | "
                    f"{base['images_per_s']:.2f} | {base['p50_ms']:.0f} ms | {base['p99_ms']:.0f} ms | 1 | - |"
                )
    for lv in result["levels"]:
        batch = f"{lv['mean_batch']:.2f}" if lv["mean_batch"] is not None else "-"
        queue = f"{lv['mean_queue_ms']:.0f} ms" if lv["mean_queue_ms"] is not None else "-"
        lines.append(
            f"| acfd-serve | {lv.get('engine', 'raw')} | {lv['clients']} | {lv['images']} | {lv['images_per_s']:.2f} | "
            f"{lv['p50_ms']:.0f} ms | {lv['p99_ms']:.0f} ms | {batch} | {queue} |"
        )
    errors = sum(lv["errors"] for lv in result["levels"])
    lines += [
        "",
        f"Errors: {errors}. Mean executed batch: inferences / executions of `acfd` in Triton's statistics during the level.",
    ]
    if cfg.get("e2e_model"):
        lines += [
            "",
            f"Engines: raw = `{cfg['model']}` (the network; acfd's Python resizes, post-processes, merges and runs NMS); "
            f"e2e = `{cfg['e2e_model']}` (the end-to-end graph: acfd's Python only decodes). Both servers were up for the "
            "whole run; each level ran on the raw one, then on the e2e one.",
        ]
    net = result.get("network_only")
    if net:
        lines += [
            "",
            f"The network alone (the runner, no decoding or post-processing), same run: {net['ms_per_image_batch1']:.0f} ms per image "
            f"at batch 1, {net['ms_per_image_batched']:.0f} ms per image at batch {net['batch']}.",
        ]
    if result.get("note"):
        lines += ["", result["note"]]
    lines += [
        "",
        f"Reproduce: `.venv/bin/python benchmarks/serve_load.py --model {cfg['model']}"
        + (f" --e2e-model {cfg['e2e_model']}" if cfg.get("e2e_model") else "")
        + "`. "
        "Not a timed test: figures vary with machine and load.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="artifact to serve (.onnx, .pth, .plan)")
    p.add_argument("--e2e-model", help="an end-to-end graph of the same network (acfd-export --end2end), measured beside --model")
    p.add_argument("--imgsz", nargs=2, type=int, default=list(DEFAULT_SCALE), metavar=("H", "W"), help="test scale")
    p.add_argument("--clients", nargs="+", type=int, default=[1, 4, 16])
    p.add_argument("--requests", type=int, default=96, help="at most this many requests per level")
    p.add_argument("--seconds", type=float, default=90.0, help="at most this long per level")
    p.add_argument("--baseline-images", type=int, default=24, help="images for the in-process figure")
    p.add_argument("--images", type=int, default=8, help="distinct JPEG files")
    p.add_argument("--image-size", nargs=2, type=int, default=[720, 1280], metavar=("H", "W"))
    p.add_argument("--max-batch", type=int, default=8)
    p.add_argument("--max-queue-delay-us", type=int, default=2000)
    p.add_argument("--instances", type=int, default=1)
    p.add_argument("--device", default="cpu", help="where the model runs, in-process and in the server (this report is a CPU one)")
    p.add_argument("--note", default="", help="a line for the report (e.g. that the machine was shared)")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "serve_cpu")
    args = p.parse_args(argv)

    import torch

    scales = ((args.imgsz[0], args.imgsz[1]),)
    images = make_images(args.images, *args.image_size)
    load_before = round(os.getloadavg()[0], 2)
    _, gflops_before = reference_workload(torch.device("cpu"))
    print(f"in-process, batch 1 ({args.baseline_images} images) ...", flush=True)
    baseline = in_process(args.model, images, scales, args.baseline_images, args.seconds, args.device)
    print(f"  {baseline}", flush=True)
    print(f"the network alone, batch 1 and {args.max_batch} ...", flush=True)
    network = network_only(args.model, scales[0], args.max_batch, device=args.device)
    print(f"  {network}", flush=True)

    e2e_baseline = None
    if args.e2e_model:
        print(f"in-process, end-to-end engine, batch 1 ({args.baseline_images} images) ...", flush=True)
        e2e_baseline = in_process(args.e2e_model, images, scales, args.baseline_images, args.seconds, args.device)
        print(f"  {e2e_baseline}", flush=True)

    levels = []
    engines = [("raw", args.model)] + ([("e2e", args.e2e_model)] if args.e2e_model else [])
    with tempfile.TemporaryDirectory(prefix="acfd-serve-load-") as stage, contextlib.ExitStack() as stack:
        urls = {}
        for engine, model in engines:
            graph_scales = probe_scales(model, args.device)
            repo = write_serve_repository(
                Path(stage) / engine / "models",
                model,
                max_batch=args.max_batch,
                max_queue_delay_us=args.max_queue_delay_us,
                instances=args.instances,
                scales=graph_scales or scales,
                device=args.device,
                threads=instance_threads(args.instances),
                end_to_end_engine=graph_scales is not None,
            )
            fh = stack.enter_context(open(Path(stage) / f"tritonserver-{engine}.log", "wb"))
            server = TritonServer(
                repo, Path(stage) / engine, http_port=free_port(), grpc_port=free_port(), metrics_port=free_port(), stdout=fh, stderr=fh
            )
            server.start()
            stack.callback(server.stop)
            server.wait_ready(300)
            urls[engine] = server.grpc_url
        import tritonclient.grpc as grpcclient

        meta = grpcclient.InferenceServerClient(urls["raw"]).get_server_metadata(as_json=True)
        for url in urls.values():
            load_level(url, images, min(4, args.max_batch), 2 * min(4, args.max_batch), args.seconds)  # warm-up
        for clients in args.clients:
            for engine, url in urls.items():
                print(f"{clients} client(s), {engine} engine ...", flush=True)
                level = {"engine": engine, **load_level(url, images, clients, args.requests, args.seconds)}
                print(f"  {level}", flush=True)
                levels.append(level)
    print(f"in-process again, batch 1 ({args.baseline_images} images) ...", flush=True)
    baseline_after = in_process(args.model, images, scales, args.baseline_images, args.seconds, args.device)
    print(f"  {baseline_after}", flush=True)
    e2e_after = in_process(args.e2e_model, images, scales, args.baseline_images, args.seconds, args.device) if args.e2e_model else None
    _, gflops_after = reference_workload(torch.device("cpu"))
    env = environment()
    result = {
        "measured": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            **env,
            "tritonserver": meta.get("version"),
            "nvidia_pytriton": package_version("nvidia-pytriton"),
            "tritonclient": package_version("tritonclient"),
            "numpy": package_version("numpy"),
            "loadavg_before": load_before,
            "loadavg_after": round(os.getloadavg()[0], 2),
            "matmul_gflops_before": round(gflops_before, 1),
            "matmul_gflops_after": round(gflops_after, 1),
        },
        "config": {
            "model": str(args.model),
            "e2e_model": str(args.e2e_model) if args.e2e_model else None,
            "scales": [list(s) for s in scales],
            "max_batch": args.max_batch,
            "max_queue_delay_us": args.max_queue_delay_us,
            "instances": args.instances,
            "device": args.device,
            "images": args.images,
            "image_size": args.image_size,
            "requests_per_level": args.requests,
            "seconds_per_level": args.seconds,
        },
        "in_process": baseline,
        "in_process_after": baseline_after,
        "e2e_in_process": e2e_baseline,
        "e2e_in_process_after": e2e_after,
        "network_only": network,
        "levels": levels,
        "note": args.note,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{args.out}.json").write_text(json.dumps(result, indent=2) + "\n")
    Path(f"{args.out}.md").write_text(markdown(result))
    print(markdown(result))
    return 0 if all(lv["errors"] == 0 for lv in levels) else 1


if __name__ == "__main__":
    sys.exit(main())

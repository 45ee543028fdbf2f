"""Bytes on the wire per image: the raw network's outputs (boxes and scores of every anchor,
at each test scale) against the end-to-end graph's (num_dets, det_boxes, det_scores), and
the request each needs (float32 planes at the scale vs the decoded uint8 image).

    .venv/bin/python benchmarks/response_bytes.py

Computed from the anchor count (acfd_deploy.model.anchors.num_anchors: the paper network
and acfd-tiny share the topology, so the same count), then checked against the tensors the
demo model's raw ONNX and end-to-end graph really return at one size (a wrong formula
fails the run). Writes benchmarks/results/response_bytes.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from acfd_deploy.configs import get_config  # noqa: E402
from acfd_deploy.model.anchors import num_anchors  # noqa: E402
from acfd_deploy.pipeline.detector import MS_TEST_SCALES  # noqa: E402

MAX_DET = 100
FP32 = 4


def raw_response_bytes(scales: tuple[tuple[int, int], ...], config_name: str = "acfd-vovnetv3-51") -> int:
    """boxes float32 [N, 4] + scores float32 [N] per scale, summed over the scales."""
    config = get_config(config_name)
    return sum(num_anchors(h, w, config) * 5 * FP32 for h, w in scales)


def e2e_response_bytes(max_det: int = MAX_DET) -> int:
    """num_dets int32 [1] + det_boxes float32 [K, 4] + det_scores float32 [K]: fixed size."""
    return 4 + max_det * 5 * FP32


def raw_request_bytes(scales: tuple[tuple[int, int], ...]) -> int:
    """float32 [3, H, W] at each scale (the client resizes)."""
    return sum(3 * h * w * FP32 for h, w in scales)


def check_against_runners(size: tuple[int, int] = (333, 517)) -> str:
    """The formulas against the demo model's real outputs at ``size``; the line says so."""
    import tempfile

    import onnx

    from acfd_deploy import load_model, reparameterize
    from acfd_deploy.export.end2end import wrap_end_to_end
    from acfd_deploy.export.onnx_export import export_onnx
    from acfd_deploy.resources import demo_weights
    from acfd_deploy.runtime.end2end import OnnxEndToEndRunner, parse_end2end
    from acfd_deploy.runtime.onnx_runner import OnnxRuntimeRunner

    model = reparameterize(load_model(demo_weights()))
    raw = export_onnx(model)
    with tempfile.TemporaryDirectory() as tmp:
        raw_path, e2e_path = Path(tmp) / "raw.onnx", Path(tmp) / "raw.e2e.onnx"
        onnx.save(raw, str(raw_path))
        e2e = wrap_end_to_end(raw, (size,), pixel_mean=tuple(model.config.pixel_mean))  # type: ignore[arg-type]
        onnx.save(e2e, str(e2e_path))
        image = np.zeros((1, *size, 3), np.uint8)
        boxes, scores = OnnxRuntimeRunner(raw_path).infer(np.zeros((1, 3, *size), np.float32))
        meta = {p.key: p.value for p in e2e.metadata_props}
        outs = OnnxEndToEndRunner(e2e_path, parse_end2end(meta)).infer_detections(image)
    raw_real = boxes.nbytes + scores.nbytes
    e2e_real = sum(o.nbytes for o in outs)
    assert raw_real == raw_response_bytes((size,), "acfd-tiny"), (raw_real, raw_response_bytes((size,), "acfd-tiny"))
    assert e2e_real == e2e_response_bytes(), (e2e_real, e2e_response_bytes())
    return f"Checked at {size[0]}x{size[1]} against the demo model's ONNX outputs: raw {raw_real} bytes, end-to-end {e2e_real} bytes."


def kb(n: int) -> str:
    return f"{n / 1000:,.1f} kB"


def main() -> int:
    check = check_against_runners()
    cases = [
        ("640x640 (single scale)", ((640, 640),), (640, 640)),
        ("640x860 (acfd-detect's default)", ((640, 860),), (640, 860)),
        ("multi-scale test 480x645 + 640x860 + 800x1075", MS_TEST_SCALES, (1080, 1920)),
    ]
    lines = [
        "# Bytes per image on the wire: raw network vs end-to-end graph",
        "",
        "Computed (benchmarks/response_bytes.py): raw = boxes float32 [N, 4] + scores float32 [N] for the N anchors at each test",
        "scale (what the stock server's `acfd_engine` returns; the client does top-k, merge and NMS); end-to-end = `num_dets` int32",
        f"[1] + `det_boxes` float32 [{MAX_DET}, 4] + `det_scores` float32 [{MAX_DET}] (`acfd_e2e`, the same whatever the scales).",
        "The paper network (acfd-vovnetv3-51) and acfd-tiny share the topology, so the anchor counts are equal.",
        "",
        "| Test scale(s) | Anchors | Raw response | End-to-end response | Ratio | Raw request (float32 at the scales) | "
        "End-to-end request (uint8 image) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    config = get_config("acfd-vovnetv3-51")
    for label, scales, image in cases:
        anchors = sum(num_anchors(h, w, config) for h, w in scales)
        raw, e2e = raw_response_bytes(scales), e2e_response_bytes()
        lines.append(
            f"| {label} | {anchors:,} | {kb(raw)} | {kb(e2e)} | {raw / e2e:,.0f}x | {kb(raw_request_bytes(scales))} | "
            f"{kb(3 * image[0] * image[1])} ({image[0]}x{image[1]}) |"
        )
    lines += [
        "",
        check,
        "",
        "A raw multi-scale request is three engine calls (one per scale); the end-to-end one is one call carrying the decoded",
        "image at its own size (here a 1080x1920 frame), or its JPEG bytes to acfd-serve's `acfd` (tens of kB).",
        "",
    ]
    out = ROOT / "benchmarks" / "results" / "response_bytes.md"
    out.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())

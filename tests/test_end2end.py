"""The end-to-end graph (uint8 image in, faces out) against the pipeline acfd-detect runs:
its resize bit for bit, its detections at the fp32 rule (IoU >= 0.99, score within 1e-3,
none extra) on images of sizes that are no multiple of 32, batches of two, one and several
scales, a scene without faces and a crowd; fp16 / int8 graphs equal to their raw networks
through the pipeline; OpenVINO; the registry, acfd-detect and bad input.

The bundled demo model (trained weights, real detections) at small scales keeps it fast.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

pytest.importorskip("onnxruntime")

import acfd_deploy  # noqa: E402
from acfd_deploy.errors import AcfdError  # noqa: E402
from acfd_deploy.export.e2e_pre import preprocess_scale, to_float_nchw  # noqa: E402
from acfd_deploy.export.end2end import wrap_end_to_end  # noqa: E402
from acfd_deploy.export.onnx_builder import FLOAT, UINT8, GraphBuilder  # noqa: E402
from acfd_deploy.export.onnx_export import export_onnx, save_onnx  # noqa: E402
from acfd_deploy.pipeline.detector import Detections, Detector, DetectorConfig  # noqa: E402
from acfd_deploy.pipeline.postprocess import PostprocessConfig  # noqa: E402
from acfd_deploy.pipeline.preprocess import DEFAULT_PIXEL_MEAN, preprocess_batch  # noqa: E402
from acfd_deploy.resources import demo_weights  # noqa: E402
from acfd_deploy.runtime.end2end import OnnxEndToEndRunner  # noqa: E402
from acfd_deploy.runtime.onnx_runner import OnnxRuntimeRunner  # noqa: E402
from acfd_deploy.runtime.registry import load_runner  # noqa: E402
from acfd_deploy.runtime.torch_runner import TorchRunner  # noqa: E402
from acfd_deploy.verify.end2end import E2E_IOU, E2E_SCORE_DIFF, EndToEndVerifier, end2end_images, match_detections  # noqa: E402

SCALE = (296, 404)
MS_SCALES = ((200, 268), (256, 344), (320, 430))  # the paper's ratio, small


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict:
    folded = acfd_deploy.reparameterize(acfd_deploy.load_model(demo_weights()))
    raw = export_onnx(folded)
    out = tmp_path_factory.mktemp("e2e")
    files = {"raw": save_onnx(raw, out / "m.onnx")}
    files["e2e"] = save_onnx(wrap_end_to_end(raw, (SCALE,)), out / "m.e2e.onnx")
    files["ms"] = save_onnx(wrap_end_to_end(raw, MS_SCALES), out / "m.ms.e2e.onnx")
    reference = TorchRunner(folded)
    # one verifier for the module: the reference pipeline runs once per configuration
    return {"folded": folded, "raw": raw, "files": files, "out": out, "reference": reference, "verifier": EndToEndVerifier(reference)}


def _exact(refs: list[Detections], cands: list[Detections]) -> None:
    match = match_detections(refs, cands, E2E_IOU, E2E_SCORE_DIFF, score_threshold=0.0)  # every detection, not only >= 0.3
    assert match.reference > 0
    assert match.matched == match.reference and match.extra == 0, match
    assert [len(d) for d in refs] == [len(d) for d in cands]


def _pre_graph(size: tuple[int, int], keep_ratio: bool) -> bytes:
    g = GraphBuilder("t/")
    scale = preprocess_scale(
        g, to_float_nchw(g, "images"), g.dim("images", 1), g.dim("images", 2), size, keep_ratio, 125, DEFAULT_PIXEL_MEAN
    )
    for value, name in ((scale.images, "out"), (scale.scale_x, "sx"), (scale.scale_y, "sy")):
        g.rename_output(g.op("Identity", [value]), name)
    graph = onnx.helper.make_graph(
        g.nodes,
        "pre",
        [onnx.helper.make_tensor_value_info("images", UINT8, ["b", "h", "w", 3])],
        [onnx.helper.make_tensor_value_info(n, FLOAT, s) for n, s in (("out", ["b", 3, "y", "x"]), ("sx", []), ("sy", []))],
        g.initializers,
    )
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString()


@pytest.mark.parametrize(
    "size,keep_ratio,shapes",
    [
        ((296, 404), False, [(333, 517), (1080, 1920), (517, 333), (37, 41), (3, 700)]),
        ((296, 404), True, [(333, 517), (1080, 1920), (517, 333)]),
        ((100, 90), False, [(333, 517), (60, 50)]),  # below the network's minimum: padded with the mean
    ],
)
def test_graph_resize_equals_the_pipeline_bit_for_bit(size: tuple[int, int], keep_ratio: bool, shapes: list) -> None:
    """Pillow's bilinear filter, shrinking (antialiased) and stretching, both axes, with
    the keep-ratio rounding and the padding: the network input is identical, not close."""
    import onnxruntime as ort

    session = ort.InferenceSession(_pre_graph(size, keep_ratio), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    for h, w in shapes:
        images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(2)]
        reference, plans = preprocess_batch(images, size, keep_ratio)
        out, sx, sy = session.run(None, {"images": np.stack(images)})
        assert out.shape == reference.shape
        assert np.array_equal(out, reference), (h, w, float(np.abs(out - reference).max()))
        assert sx == np.float32(plans[0].scale_x) and sy == np.float32(plans[0].scale_y)


def test_fp32_single_scale_matches_the_pipeline(built: dict) -> None:
    runner = load_runner(built["files"]["e2e"], device="cpu")
    assert isinstance(runner, OnnxEndToEndRunner) and runner.outputs == "detections"
    verifier = built["verifier"]
    verdict = verifier.verify(runner)
    assert verdict.rule == "end2end" and verdict.passed is True, verdict.to_dict()
    assert verdict.evidence.match.reference >= 20
    images, refs = verifier.reference_detections(DetectorConfig(scales=(SCALE,), batch_size=2))
    assert {im.shape[:2] for im in images} >= {(333, 517), (517, 333), (720, 1280), (300, 400)}
    _exact(refs, Detector(runner, DetectorConfig(batch_size=2)).detect(images))  # all 100 rows, low scores too


def test_fp32_multi_scale_is_one_graph_with_weights_stored_once(built: dict) -> None:
    raw, ms = built["raw"], onnx.load(str(built["files"]["ms"]))
    raw_bytes = sum(t.ByteSize() for t in raw.graph.initializer)
    ms_bytes = sum(t.ByteSize() for t in ms.graph.initializer)
    assert raw_bytes < ms_bytes < raw_bytes * 1.1  # the copies share the weights
    assert sum(n.op_type == "Conv" for n in ms.graph.node) == 3 * sum(n.op_type == "Conv" for n in raw.graph.node)
    runner = load_runner(built["files"]["ms"], device="cpu")
    assert runner.end2end.scales == MS_SCALES
    verifier = EndToEndVerifier(built["reference"], images=end2end_images(MS_SCALES)[:2])  # a batch of two
    verdict = verifier.verify(runner)
    assert verdict.passed is True, verdict.to_dict()
    images, refs = verifier.reference_detections(DetectorConfig(scales=MS_SCALES, batch_size=2))
    _exact(refs, Detector(runner).detect(images))


def test_top_k_cut_on_a_crowd_and_an_empty_scene(built: dict) -> None:
    """max_det smaller than the crowd's faces: the cut falls among strong detections and
    must agree; a faceless gradient gives what the pipeline gives, rows past it zero."""
    post = PostprocessConfig(max_det=20)
    path = save_onnx(wrap_end_to_end(built["raw"], (SCALE,), post=post), built["out"] / "cut.e2e.onnx")
    runner = load_runner(path, device="cpu")
    crowd, empty = end2end_images((SCALE,))[-2:]
    refs = Detector(built["reference"], DetectorConfig(scales=(SCALE,), post=post)).detect([crowd, empty])
    assert (refs[0].scores >= 0.3).sum() >= 20  # the cut is among strong detections
    num, boxes, scores = runner.infer_detections(np.stack([crowd]))
    assert boxes.shape == (1, 20, 4) and int(num[0, 0]) == 20 and np.all(np.diff(scores[0]) <= 0)
    _exact(refs, Detector(runner).detect([crowd, empty]))
    num, boxes, scores = runner.infer_detections(empty[None])
    n = int(num[0, 0])
    assert n == len(refs[1]) and not boxes[0, n:].any() and not scores[0, n:].any()


def test_fp16_and_int8_graphs_are_their_raw_networks_through_the_pipeline(built: dict, tmp_path: Path) -> None:
    """Wrapping is exact for any network: the e2e fp16 / int8 files give the detections of
    the raw fp16 / int8 files through the pipeline, at the fp32 rule; the verification
    layer judges the network inside by the raw rules (the fp16 one passes)."""
    from acfd_deploy.export.fp16 import convert_fp16
    from acfd_deploy.export.int8 import quantize_int8
    from acfd_deploy.export.onnx_export import set_metadata
    from acfd_deploy.fileio import sha256_file
    from acfd_deploy.verify.inputs import parity_inputs
    from acfd_deploy.verify.verifier import Verifier

    images = end2end_images((SCALE,))[:2]
    calib = [preprocess_batch([im], SCALE)[0] for im in images]
    verifier = Verifier(built["reference"], parity_inputs((256, 320), count=2))
    verdicts = {}
    for precision, proto in (("fp16", convert_fp16(built["raw"])), ("int8", quantize_int8(built["raw"], calib)[0])):
        set_metadata(proto, {"precision": precision})
        raw_path = save_onnx(proto, tmp_path / f"m.{precision}.onnx")
        wrapped = wrap_end_to_end(proto, (SCALE,))
        for key, value in (("network_file", raw_path.name), ("network_sha256", sha256_file(raw_path))):
            entry = wrapped.metadata_props.add()
            entry.key, entry.value = key, value
        e2e = load_runner(save_onnx(wrapped, tmp_path / f"m.e2e.{precision}.onnx"), device="cpu")
        assert e2e.precision == precision and e2e.outputs == "detections"
        config = DetectorConfig(scales=(SCALE,), batch_size=2)
        _exact(Detector(load_runner(raw_path, device="cpu"), config).detect(images), Detector(e2e, config).detect(images))
        verdicts[precision] = verifier.verify(e2e)
    # fp16: the anchor-level rule on the network inside, and the graph around it exact
    assert verdicts["fp16"].rule == "detection" and verdicts["fp16"].passed is True, verdicts["fp16"].to_dict()
    assert "graph vs pipeline over m.fp16.onnx" in verdicts["fp16"].reason
    # int8 without a labelled set: the detection rule's fallback judges (it may pass or fail)
    assert verdicts["int8"].rule == "detection" and verdicts["int8"].passed is not None


def test_openvino_runs_the_same_graph(built: dict, tmp_path: Path) -> None:
    pytest.importorskip("openvino")
    from acfd_deploy.export.openvino import write_ir
    from acfd_deploy.runtime.openvino_model import read_ir_metadata

    xml, _ = write_ir(built["files"]["e2e"], tmp_path / "m.e2e.xml")
    assert read_ir_metadata(xml)["graph"] == "end2end"
    images = end2end_images((SCALE,))[2:5:2]  # portrait, crowd
    onnx_dets = Detector(load_runner(built["files"]["e2e"], device="cpu")).detect(images)
    for reference in (xml, built["files"]["e2e"]):  # the IR, and the .onnx through OpenVINO
        runner = load_runner(reference, device="cpu", backend="openvino")
        assert runner.outputs == "detections" and runner.name.endswith("-e2e")
        _exact(onnx_dets, Detector(runner).detect(images))


def test_registry_tells_end_to_end_files_by_metadata(built: dict, tmp_path: Path) -> None:
    raw = load_runner(built["files"]["raw"], device="cpu")
    assert type(raw) is OnnxRuntimeRunner and raw.outputs == "anchors"
    renamed = tmp_path / "plain-name.onnx"  # the name says nothing; the metadata does
    renamed.write_bytes(built["files"]["e2e"].read_bytes())
    runner = load_runner(renamed, device="cpu")
    assert isinstance(runner, OnnxEndToEndRunner)
    assert runner.end2end.scales == (SCALE,) and runner.end2end.max_det == 100 and runner.end2end.post["nms_iou"] == 0.55
    meta = {p.key: p.value for p in onnx.load(str(renamed), load_external_data=False).metadata_props}
    assert meta["graph"] == "end2end" and json.loads(meta["input"])["dtype"] == "uint8"


@pytest.mark.parametrize(
    "images,what",
    [
        (np.zeros((1, 40, 50, 3), np.float32), "uint8"),
        (np.zeros((1, 40, 50, 4), np.uint8), "3 channels"),
        (np.zeros((40, 50, 3), np.uint8), "[B, H, W, 3]"),
        (np.zeros((1, 0, 50, 3), np.uint8), "empty"),
        (np.zeros((0, 40, 50, 3), np.uint8), "empty"),
    ],
)
def test_bad_input_is_one_line(built: dict, images: np.ndarray, what: str) -> None:
    runner = load_runner(built["files"]["e2e"], device="cpu")
    with pytest.raises(AcfdError, match=None) as err:
        runner.infer_detections(images)
    assert what in str(err.value) and "\n" not in str(err.value)
    num, _, _ = runner.infer_detections(np.full((1, 7, 9, 3), 128, np.uint8))  # tiny but valid: resized up
    assert num.shape == (1, 1)


def test_acfd_detect_gives_the_raw_artifacts_detections(built: dict, tmp_path: Path) -> None:
    from PIL import Image

    from acfd_deploy.cli import detect
    from acfd_deploy.data.synth import generate_sample, sample_rng

    folder = tmp_path / "in"
    folder.mkdir()
    for i, (h, w) in enumerate([(333, 517), (333, 517), (517, 333)]):
        Image.fromarray(generate_sample(sample_rng(33, i), h, w)[0]).save(folder / f"s{i}.png")
    found = {}
    for label, model, extra in (("raw", built["files"]["raw"], ["--imgsz", *map(str, SCALE)]), ("e2e", built["files"]["e2e"], [])):
        dest = tmp_path / label
        args = [str(folder), "--model", str(model), *extra, "--batch", "2", "--out", str(dest), "--no-draw", "--no-progress"]
        assert detect.main(args) == 0
        rows = json.loads((dest / "detections.json").read_text())["images"]
        found[label] = {Path(r["path"]).name: np.array([[*d["box"], d["score"]] for d in r["detections"]]).reshape(-1, 5) for r in rows}
    assert found["raw"].keys() == found["e2e"].keys() and sum(len(v) for v in found["raw"].values()) > 0
    for name, dets in found["raw"].items():
        assert dets.shape == found["e2e"][name].shape
        assert np.abs(dets - found["e2e"][name]).max() < 1e-2  # boxes rounded in the JSON; same detections

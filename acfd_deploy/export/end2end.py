"""One ONNX graph from decoded image to faces: :func:`wrap_end_to_end` composes the
preprocessing (:mod:`acfd_deploy.export.e2e_pre`), the raw network once per test scale,
and the post-processing (:mod:`acfd_deploy.export.e2e_post`).

Layout (the paper's multi-scale test with three scales)::

    images uint8 [B,H,W,3] -> int32 NCHW -+-> resize 480x645 -> s0/network -> top 1000, map back -+
                                          +-> resize 640x860 -> s1/network -> top 1000, map back -+-> concat
                                          +-> resize 800x1075 -> s2/network -> top 1000, map back -+     |
        num_dets [B,1], det_boxes [B,100,4], det_scores [B,100] <- sort, pad <- NonMaxSuppression <-+

The network's nodes are copied once per scale with their value names prefixed (``s0/``,
``s1/``, ...) and its initializers kept once, shared by the copies: the weights are stored
once however many scales there are. Wrapping the already-verified raw fp32, fp16 or int8
ONNX means each end-to-end file contains exactly that network; the pre- and
post-processing are the same fp32/integer ops in all of them.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

import onnx
from onnx import helper

from acfd_deploy.errors import AcfdError
from acfd_deploy.export.e2e_post import merge_and_suppress, select_and_map
from acfd_deploy.export.e2e_pre import preprocess_scale, to_float_nchw
from acfd_deploy.export.onnx_builder import FLOAT, INT32, UINT8, GraphBuilder
from acfd_deploy.pipeline.postprocess import PostprocessConfig
from acfd_deploy.runtime.end2end import GRAPH_END2END, GRAPH_KEY, INPUT_NAME, OUTPUT_NAMES


def _inline_network(raw: onnx.GraphProto, prefix: str, input_value: str) -> tuple[list[onnx.NodeProto], dict[str, str]]:
    """The raw network's nodes with every value name prefixed, except initializers
    (shared) and the input (wired to ``input_value``); returns the nodes and the
    prefixed names of its outputs."""
    shared = {t.name for t in raw.initializer}
    inputs = [i.name for i in raw.input if i.name not in shared]
    if len(inputs) != 1:
        raise AcfdError(f"the network to wrap must have one input, has {inputs}")

    def rename(value: str) -> str:
        if not value or value in shared:
            return value
        return input_value if value == inputs[0] else prefix + value

    nodes = []
    for node in raw.node:
        if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute):
            raise AcfdError(f"the network has a {node.op_type} node with a subgraph; the end-to-end wrapper copies flat graphs only")
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        copy.name = prefix + node.name
        copy.input[:] = [rename(v) for v in node.input]
        copy.output[:] = [rename(v) for v in node.output]
        nodes.append(copy)
    return nodes, {o.name: prefix + o.name for o in raw.output}


def end2end_metadata(scales: tuple[tuple[int, int], ...], keep_ratio: bool, post: PostprocessConfig, min_side: int) -> dict[str, str]:
    """What the runner registry reads to know an end-to-end file and run it."""
    contract = {
        "name": INPUT_NAME,
        "shape": ["batch", "height", "width", 3],
        "dtype": "uint8",
        "layout": "NHWC RGB as decoded, any height and width (one size per batch)",
        "min_side": min_side,
        "outputs": {
            "num_dets": "[batch, 1] int32",
            "det_boxes": f"[batch, {post.max_det}, 4] float32 xyxy input image pixels, rows past num_dets zero",
            "det_scores": f"[batch, {post.max_det}] float32, rows past num_dets zero",
        },
    }
    return {
        GRAPH_KEY: GRAPH_END2END,
        "scales": json.dumps([list(s) for s in scales]),
        "keep_ratio": json.dumps(keep_ratio),
        "post": json.dumps(asdict(post), sort_keys=True),
        "max_det": str(post.max_det),
        "input": json.dumps(contract, sort_keys=True),
    }


def wrap_end_to_end(
    raw: onnx.ModelProto,
    scales: tuple[tuple[int, int], ...],
    keep_ratio: bool = False,
    post: PostprocessConfig | None = None,
    min_side: int = 125,
    pixel_mean: tuple[float, float, float] = (123.675, 116.28, 103.53),
) -> onnx.ModelProto:
    """The end-to-end model around the raw network ``raw`` (input ``images`` float32
    [B,3,H,W] 0..255, outputs ``boxes``/``scores``); its metadata is kept, with the
    end-to-end keys of :func:`end2end_metadata` added."""
    cfg = post or PostprocessConfig()
    if not scales:
        raise AcfdError("the end-to-end graph needs at least one test scale")
    g = GraphBuilder("e2e/")
    height, width = g.dim(INPUT_NAME, 1), g.dim(INPUT_NAME, 2)
    pixels = to_float_nchw(g, INPUT_NAME)
    per_scale = []
    network_nodes: list[onnx.NodeProto] = []
    for i, size in enumerate(scales):
        tensors = preprocess_scale(g, pixels, height, width, tuple(size), keep_ratio, min_side, pixel_mean)  # type: ignore[arg-type]
        nodes, outs = _inline_network(raw.graph, f"s{i}/", tensors.images)
        g.nodes.extend(nodes)
        network_nodes.extend(nodes)
        per_scale.append(select_and_map(g, outs["boxes"], outs["scores"], tensors.scale_x, tensors.scale_y, height, width, cfg))
    num, boxes, scores = merge_and_suppress(g, per_scale, cfg)
    for value, name in zip((num, boxes, scores), OUTPUT_NAMES):
        g.rename_output(value, name)
    graph = helper.make_graph(
        g.nodes,
        "acfd_end2end",
        [helper.make_tensor_value_info(INPUT_NAME, UINT8, ["batch", "height", "width", 3])],
        [
            helper.make_tensor_value_info(OUTPUT_NAMES[0], INT32, ["batch", 1]),
            helper.make_tensor_value_info(OUTPUT_NAMES[1], FLOAT, ["batch", cfg.max_det, 4]),
            helper.make_tensor_value_info(OUTPUT_NAMES[2], FLOAT, ["batch", cfg.max_det]),
        ],
        [*raw.graph.initializer, *g.initializers],
    )
    model = helper.make_model(graph, opset_imports=list(raw.opset_import), producer_name=raw.producer_name or "acfd-deploy")
    model.ir_version = raw.ir_version
    meta: dict[str, Any] = {p.key: p.value for p in raw.metadata_props}
    meta.update(end2end_metadata(tuple((int(h), int(w)) for h, w in scales), keep_ratio, cfg, min_side))
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    return model

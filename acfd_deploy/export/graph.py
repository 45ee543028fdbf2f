"""Small ONNX graph utilities: topological order, the network's trunk and its decode tail.

The exported graph has two parts. The *trunk* is every node that feeds a convolution
(normalization, backbone, ABi-FPN, head tower) plus the convolutions themselves. The
*tail* is everything after the last convolutions: reshapes, anchor generation from the
feature shapes (Shape / Range / Mul ...), box decoding (Exp, coordinate arithmetic) and
the final sigmoid. Reduced precision belongs in the trunk; the tail stays fp32, because
pixel coordinates up to a few thousand lose whole pixels in fp16 and an int8 score has
only 256 levels.
"""

from __future__ import annotations

from collections import Counter

import onnx
from onnx import numpy_helper


def toposort(graph: onnx.GraphProto) -> None:
    """Reorder ``graph.node`` topologically in place (stable: keeps the order where it can).

    Converters that insert Cast nodes append them at the end, which onnx.checker rejects."""
    available = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending = list(graph.node)
    ordered: list[onnx.NodeProto] = []
    while pending:
        rest = []
        for node in pending:
            if all(name in available for name in node.input):
                ordered.append(node)
                available.update(node.output)
            else:
                rest.append(node)
        if len(rest) == len(pending):
            missing = sorted({i for n in rest for i in n.input if i not in available})[:5]
            raise ValueError(f"the graph has a cycle or undefined inputs: {', '.join(missing)}")
        pending = rest
    del graph.node[:]
    graph.node.extend(ordered)


def _producers(graph: onnx.GraphProto) -> dict[str, onnx.NodeProto]:
    return {out: node for node in graph.node for out in node.output}


def _ancestors(starts: list[onnx.NodeProto], producers: dict[str, onnx.NodeProto]) -> set[str]:
    seen: set[str] = set()
    stack = list(starts)
    while stack:
        node = stack.pop()
        if node.name in seen:
            continue
        seen.add(node.name)
        stack.extend(producers[i] for i in node.input if i in producers)
    return seen


def ensure_node_names(graph: onnx.GraphProto) -> None:
    """Give every unnamed node a unique name (block lists and exclusions work by name)."""
    used = {n.name for n in graph.node if n.name}
    for i, node in enumerate(graph.node):
        if not node.name:
            name = f"{node.op_type}_{i}"
            while name in used:
                name += "_"
            node.name = name
            used.add(name)


def trunk_nodes(graph: onnx.GraphProto) -> set[str]:
    """Names of the convolutions and every node that feeds one."""
    convs = [n for n in graph.node if n.op_type == "Conv"]
    return _ancestors(convs, _producers(graph))


def tail_nodes(graph: onnx.GraphProto) -> list[str]:
    """Names of the nodes after the last convolutions (anchors, decoding, sigmoid)."""
    trunk = trunk_nodes(graph)
    return [n.name for n in graph.node if n.name not in trunk]


def prediction_convs(graph: onnx.GraphProto) -> list[str]:
    """The head's final convolutions: those whose output reaches no other convolution."""
    producers = _producers(graph)
    feeders: set[str] = set()
    for conv in (n for n in graph.node if n.op_type == "Conv"):
        feeders |= _ancestors([producers[i] for i in conv.input if i in producers], producers)
    return [n.name for n in graph.node if n.op_type == "Conv" and n.name not in feeders]


def conv_weight_dtypes(model: onnx.ModelProto) -> Counter[str]:
    """The dtype of every Conv's weight as the Conv sees it: an initializer's dtype, or
    ``int8`` when the weight comes through a DequantizeLinear of an int8 initializer."""
    inits = {t.name: t for t in model.graph.initializer}
    producers = _producers(model.graph)
    out: Counter[str] = Counter()
    for node in model.graph.node:
        if node.op_type != "Conv" or len(node.input) < 2:
            continue
        name = node.input[1]
        src = producers.get(name)
        if src is not None and src.op_type == "DequantizeLinear" and src.input[0] in inits:
            out[onnx.helper.tensor_dtype_to_np_dtype(inits[src.input[0]].data_type).name] += 1
        elif src is not None and src.op_type == "Cast":
            out["cast:" + onnx.helper.tensor_dtype_to_np_dtype(src.attribute[0].i).name] += 1
        elif name in inits:
            out[onnx.helper.tensor_dtype_to_np_dtype(inits[name].data_type).name] += 1
        else:
            out["computed"] += 1
    return out


def _reduce_axes(node: onnx.NodeProto, graph: onnx.GraphProto) -> list[int] | None:
    """A ReduceMean's axes: the attribute (opset < 18) or a constant second input."""
    for attr in node.attribute:
        if attr.name == "axes":
            return list(attr.ints)
    if len(node.input) > 1 and node.input[1]:
        for init in graph.initializer:
            if init.name == node.input[1]:
                return [int(a) for a in numpy_helper.to_array(init).reshape(-1)]
    return None


def global_pools_to_gap(model: onnx.ModelProto) -> int:
    """Replace each ReduceMean over H and W of a 4-D tensor (keepdims) by the equal
    GlobalAveragePool, in place; returns how many.

    The eSE blocks' squeeze is exported as ReduceMean. In an int8 Q/DQ graph ONNX Runtime
    keeps it in fp32, behind a DequantizeLinear of the whole feature map, and at
    ORT_ENABLE_ALL (its default) the layout pass hands it an NHWC tensor, where it reduces
    over strided axes: 11-14% of the paper network's int8 time. DequantizeLinear ->
    GlobalAveragePool -> QuantizeLinear is fused into QLinearGlobalAveragePool instead."""
    inferred = onnx.shape_inference.infer_shapes(model).graph
    rank = {
        v.name: len(v.type.tensor_type.shape.dim)
        for v in (*inferred.input, *inferred.value_info, *inferred.output)
        if v.type.tensor_type.HasField("shape")
    }
    done = 0
    for i, node in enumerate(list(model.graph.node)):
        if node.op_type != "ReduceMean" or rank.get(node.input[0]) != 4:
            continue
        keepdims = next((a.i for a in node.attribute if a.name == "keepdims"), 1)
        if keepdims != 1 or sorted(a % 4 for a in _reduce_axes(node, model.graph) or []) != [2, 3]:
            continue
        gap = onnx.helper.make_node("GlobalAveragePool", [node.input[0]], list(node.output), name=node.name)
        model.graph.node.remove(node)
        model.graph.node.insert(i, gap)
        done += 1
    return done

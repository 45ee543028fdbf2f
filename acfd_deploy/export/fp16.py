"""FP16 ONNX: the trunk (normalization, backbone, ABi-FPN, head) in half precision, with
fp32 inputs and outputs and the decode tail (anchors, Exp, coordinate math, sigmoid) kept
in fp32. Uses ONNX Runtime's own converter (``onnxruntime.transformers.float16``)."""

from __future__ import annotations

import warnings

import onnx

from acfd_deploy.errors import CheckFailed
from acfd_deploy.export.graph import conv_weight_dtypes, ensure_node_names, tail_nodes, toposort


class PrecisionError(CheckFailed):
    """A reduced-precision artifact that is not what it claims to be."""


def convert_fp16(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Return an FP16 copy of ``proto`` (the fp32 model is not modified)."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.ModelProto.FromString(proto.SerializeToString())
    ensure_node_names(model.graph)
    keep_fp32 = tail_nodes(model.graph)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        half = convert_float_to_float16(model, keep_io_types=True, node_block_list=keep_fp32, disable_shape_infer=False)
    toposort(half.graph)  # the converter appends its Cast nodes at the end
    onnx.checker.check_model(half, full_check=True)
    verify_fp16(half)
    return half


def verify_fp16(proto: onnx.ModelProto) -> dict[str, int]:
    """Fail loudly unless (nearly) every convolution has fp16 weights: an ``--fp16`` that
    silently yields fp32 is a known failure of other tools. Returns the conv weight dtypes."""
    dtypes = conv_weight_dtypes(proto)
    total = sum(dtypes.values())
    half = dtypes.get("float16", 0)
    if total == 0 or half < 0.9 * total:
        raise PrecisionError(f"the fp16 ONNX has fp16 weights in only {half} of {total} convolutions ({dict(dtypes)})")
    for vi in [*proto.graph.input, *proto.graph.output]:
        if vi.type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
            raise PrecisionError(f"the fp16 ONNX must keep fp32 I/O, but {vi.name} is not float32")
    return dict(dtypes)

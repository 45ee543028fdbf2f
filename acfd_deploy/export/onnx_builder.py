"""A few lines over ``onnx.helper`` for writing graphs by hand: unique value names,
constants as initializers, one call per node. The end-to-end graph's pre- and
post-processing (:mod:`acfd_deploy.export.e2e_pre`, :mod:`acfd_deploy.export.e2e_post`)
are written with it, so each op in them is visible and exact (no tracer in between)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

INT64 = TensorProto.INT64
INT32 = TensorProto.INT32
FLOAT = TensorProto.FLOAT
DOUBLE = TensorProto.DOUBLE
UINT8 = TensorProto.UINT8
BOOL = TensorProto.BOOL


class GraphBuilder:
    """Collects nodes and constant initializers; every name it makes starts with ``prefix``."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._count = 0
        self._consts: dict[tuple[str, bytes, tuple[int, ...]], str] = {}

    def name(self, hint: str) -> str:
        self._count += 1
        return f"{self.prefix}{hint}_{self._count}"

    def const(self, value: Any, dtype: Any = np.int64) -> str:
        """An initializer holding ``value`` (deduplicated by dtype, shape and bytes)."""
        arr = np.asarray(value, dtype=dtype)
        key = (arr.dtype.str, arr.tobytes(), arr.shape)
        if key not in self._consts:
            name = self.name("const")
            self.initializers.append(numpy_helper.from_array(arr, name))
            self._consts[key] = name
        return self._consts[key]

    def op(self, op_type: str, inputs: Sequence[str], hint: str | None = None, outputs: int = 1, **attrs: Any) -> Any:
        """Add a node; returns its output name (or a list of names for ``outputs > 1``)."""
        names = [self.name(hint or op_type.lower()) for _ in range(outputs)]
        self.nodes.append(helper.make_node(op_type, list(inputs), names, name=self.name(op_type), **attrs))
        return names[0] if outputs == 1 else names

    def rename_output(self, value: str, new_name: str) -> str:
        """Give the node that made ``value`` the output name ``new_name`` (graph outputs)."""
        for node in self.nodes:
            for i, out in enumerate(node.output):
                if out == value:
                    node.output[i] = new_name
                    return new_name
        raise KeyError(value)

    # small compositions used on both sides of the network
    def scalar(self, tensor: str, index: int) -> str:
        """Element ``index`` of a 1-D tensor, as a 0-D tensor."""
        return self.op("Gather", [tensor, self.const(index)], axis=0)

    def dim(self, tensor: str, axis: int) -> str:
        """``tensor.shape[axis]`` as an int64 0-D tensor."""
        return self.scalar(self.op("Shape", [tensor]), axis)

    def cast(self, tensor: str, to: int) -> str:
        return self.op("Cast", [tensor], to=to)

    def unsqueeze(self, tensor: str, axes: Sequence[int]) -> str:
        return self.op("Unsqueeze", [tensor, self.const(list(axes))])

    def squeeze(self, tensor: str, axes: Sequence[int]) -> str:
        return self.op("Squeeze", [tensor, self.const(list(axes))])

    def stack_scalars(self, scalars: Sequence[str]) -> str:
        """0-D int64 tensors -> one 1-D tensor (a shape)."""
        return self.op("Concat", [self.unsqueeze(s, [0]) for s in scalars], axis=0)

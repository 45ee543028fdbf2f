"""Triton model configs (``config.pbtxt``) as protobuf text, written by hand.

No protobuf or tritonclient is needed to write a repository; the tests parse every config
this module writes as Triton's ``ModelConfig``. The model names and the tensors of the two
served models (``acfd_engine``: the raw network; ``acfd``: image bytes in, detections out)
are defined here once, for both repository writers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

END_TO_END = "acfd"
ENGINE = "acfd_engine"
# the end-to-end artifact (acfd-export --end2end) as a model of its own: decoded pixels in
E2E = "acfd_e2e"
DEFAULT_MAX_BATCH = 8
DEFAULT_QUEUE_DELAY_US = 2000
MAX_DETECTIONS = 100  # rows of the end-to-end model's detection outputs (zero-padded)


def pbtxt_string(text: str) -> str:
    """A protobuf text-format string literal."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def preferred_batch_sizes(max_batch: int) -> list[int]:
    """Half and full ``max_batch`` (e.g. 4 and 8): the batcher waits up to the queue delay
    to fill one of them, and otherwise runs what it has."""
    return sorted({b for b in (max_batch // 2, max_batch) if b >= 2})


def _tensor(name: str, dtype: str, dims: Sequence[int]) -> str:
    return f"  {{ name: {pbtxt_string(name)} data_type: {dtype} dims: [ {', '.join(str(d) for d in dims)} ] }}"


def _parameters(params: Mapping[str, str]) -> list[str]:
    return [f"parameters {{ key: {pbtxt_string(k)} value {{ string_value: {pbtxt_string(v)} }} }}" for k, v in sorted(params.items())]


def _batching(max_batch: int, queue_delay_us: int) -> list[str]:
    preferred = preferred_batch_sizes(max_batch)
    lines = ["dynamic_batching {"]
    if preferred:
        lines.append(f"  preferred_batch_size: [ {', '.join(map(str, preferred))} ]")
    lines += [f"  max_queue_delay_microseconds: {queue_delay_us}", "}"]
    return lines


def _config_text(
    name: str,
    comment: Iterable[str],
    head: Sequence[str],
    max_batch: int,
    inputs: Sequence[str],
    outputs: Sequence[str],
    queue_delay_us: int,
    instance_group: str,
    params: Mapping[str, str],
    tail: Sequence[str] = (),
) -> str:
    lines = [f"# {c}" if c else "#" for c in comment]
    lines += [f"name: {pbtxt_string(name)}", *head, f"max_batch_size: {max_batch}"]
    lines += ["input [", ",\n".join(inputs), "]", "output [", ",\n".join(outputs), "]"]
    lines += _batching(max_batch, queue_delay_us)
    lines += [f"instance_group [ {instance_group} ]", *_parameters(params), *tail]
    return "\n".join(lines) + "\n"


ENGINE_INPUTS = [_tensor("images", "TYPE_FP32", [3, -1, -1])]
ENGINE_OUTPUTS = [_tensor("boxes", "TYPE_FP32", [-1, 4]), _tensor("scores", "TYPE_FP32", [-1])]
# TYPE_STRING is Triton's config name for the BYTES wire type
END_TO_END_INPUTS = [_tensor("image", "TYPE_STRING", [1])]
END_TO_END_OUTPUTS = [
    _tensor("num_dets", "TYPE_INT32", [1]),
    _tensor("det_boxes", "TYPE_FP32", [MAX_DETECTIONS, 4]),
    _tensor("det_scores", "TYPE_FP32", [MAX_DETECTIONS]),
]


def e2e_inputs_outputs(max_det: int = MAX_DETECTIONS) -> tuple[list[str], list[str]]:
    """``acfd_e2e``'s tensors: the end-to-end graph's own (batch dimension from
    ``max_batch_size``). Triton's dynamic batcher merges only requests of equal H and W."""
    inputs = [_tensor("images", "TYPE_UINT8", [-1, -1, 3])]
    outputs = [
        _tensor("num_dets", "TYPE_INT32", [1]),
        _tensor("det_boxes", "TYPE_FP32", [max_det, 4]),
        _tensor("det_scores", "TYPE_FP32", [max_det]),
    ]
    return inputs, outputs


def _warmup(data_type: str, dims: Sequence[int]) -> list[str]:
    """A ``model_warmup`` block: one all-zero request of ``images`` with these dims."""
    shown = ", ".join(str(d) for d in dims)
    return [
        "model_warmup [ {",
        '  name: "zeros" batch_size: 1',
        f'  inputs {{ key: "images" value {{ data_type: {data_type} dims: [ {shown} ] zero_data: true }} }}',
        "} ]",
    ]


def e2e_config(
    *,
    head: Sequence[str],
    comment: Iterable[str],
    max_batch: int,
    queue_delay_us: int,
    instance_group: str,
    params: Mapping[str, str],
    max_det: int = MAX_DETECTIONS,
    warmup_hw: tuple[int, int] | None = None,
) -> str:
    # the first real request should not pay for the session's first run
    tail = _warmup("TYPE_UINT8", [warmup_hw[0], warmup_hw[1], 3]) if warmup_hw is not None else []
    inputs, outputs = e2e_inputs_outputs(max_det)
    return _config_text(E2E, comment, head, max_batch, inputs, outputs, queue_delay_us, instance_group, params, tail)


def engine_config(
    *,
    head: Sequence[str],
    comment: Iterable[str],
    max_batch: int,
    queue_delay_us: int,
    instance_group: str,
    params: Mapping[str, str],
    warmup_hw: tuple[int, int] | None = None,
) -> str:
    # the first real request should not pay for kernel selection
    tail = _warmup("TYPE_FP32", [3, warmup_hw[0], warmup_hw[1]]) if warmup_hw is not None else []
    return _config_text(ENGINE, comment, head, max_batch, ENGINE_INPUTS, ENGINE_OUTPUTS, queue_delay_us, instance_group, params, tail)


def end_to_end_config(*, comment: Iterable[str], max_batch: int, queue_delay_us: int, instances: int, params: Mapping[str, str]) -> str:
    return _config_text(
        END_TO_END,
        comment,
        ['backend: "python"'],
        max_batch,
        END_TO_END_INPUTS,
        END_TO_END_OUTPUTS,
        queue_delay_us,
        f"{{ count: {instances} kind: KIND_CPU }}",
        params,
    )

"""OpenVINO models as acfd-deploy reads them: the file (IR or ONNX) to an ``ov.Model`` with
the rewrites the CPU plugin needs, the precision and metadata an artifact declares, and
whether this CPU runs bf16 natively. No compilation here: listings and exports use it
without running anything."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

from acfd_deploy.envinfo import cpu_flags
from acfd_deploy.errors import AcfdError, one_line
from acfd_deploy.fileio import require_file
from acfd_deploy.runtime.onnx_runner import recorded_precision
from acfd_deploy.runtime.registry import backends

IR_RT_SECTION = "acfd"  # rt_info section of an IR that holds the ONNX metadata (export/openvino.py)


def install_hint() -> str:
    """How to install OpenVINO: the registry's record of the backend."""
    return next(b.install for b in backends() if b.name == "openvino")


def _import_ov():  # noqa: ANN202
    try:
        import openvino as ov
    except ImportError:
        raise AcfdError(f"OpenVINO is not installed: {install_hint()}") from None
    return ov


def _one_line(exc: BaseException, limit: int = 200) -> str:
    """OpenVINO's message without its C++ source locations (``Exception from src/...cpp:84:``,
    ``Check '...' failed at src/...hpp:149:``), on one line."""
    text = one_line(exc)
    text = re.sub(r"Exception from \S+:\d+:\s*", "", text)
    text = re.sub(r"Check '.*?' failed at \S+:\d+:\s*", "", text)
    return (text.strip() or type(exc).__name__)[:limit]


def cpu_supports_bf16() -> tuple[bool, str]:
    """Whether this CPU runs bf16 natively (AVX512_BF16 or AMX-BF16) and OpenVINO's CPU
    plugin offers bf16, with the reason either way (for skip messages and tables).

    Emulated bf16 (plain AVX-512) is slower than f32 and rounds differently, so it counts
    as "no": a bf16 figure or parity check only means something where it is native."""
    try:
        import openvino as ov

        caps = list(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    except Exception as exc:  # not installed, or no CPU plugin
        return False, f"OpenVINO's CPU plugin is not available ({_one_line(exc, 80)})"
    flags = cpu_flags()
    native = [name for flag, name in (("amx_bf16", "AMX-BF16"), ("avx512_bf16", "AVX512_BF16")) if flag in flags]
    if "BF16" not in caps:
        return False, f"OpenVINO's CPU plugin offers no bf16 here (capabilities: {', '.join(caps)})"
    if not flags:
        return True, "OpenVINO's CPU plugin offers BF16 (CPU flags not readable to confirm native support)"
    if not native:
        return False, "the CPU has neither AVX512_BF16 nor AMX-BF16 (bf16 would be emulated)"
    return True, f"native bf16: {', '.join(native)} (OpenVINO CPU capabilities include BF16)"


def read_model(path: Path) -> Any:
    """The model in a file, ready for any input size the ONNX accepts: an IR as it is, an
    ONNX file through ``openvino.convert_model``; then ceil-mode max-pools are rewritten
    (:func:`pad_ceil_maxpools`).

    ``convert_model``, not ``Core.read_model``, for ONNX: it runs OpenVINO's graph
    transformations with constant folding. Measured with OpenVINO 2026.4.1, a Q/DQ int8
    file read with ``Core.read_model`` and compiled with dynamic height and width gives
    wrong outputs on the CPU (no reference detection found again), while the same file
    through ``convert_model`` (or reshaped to a static size) matches ONNX Runtime."""
    ov = _import_ov()
    is_onnx = _check_parsable(path)
    try:
        model = ov.convert_model(str(path)) if is_onnx else ov.Core().read_model(str(path))
    except Exception as exc:
        raise AcfdError(f"OpenVINO cannot read {path} ({_one_line(exc)})") from None
    pad_ceil_maxpools(model)
    return model


def _check_parsable(path: Path) -> bool:
    """Raise unless OpenVINO's frontend for the file's kind can parse it; whether it is ONNX.

    Asked before reading, so that a bad file is not handed to every other frontend in turn
    (TensorFlow's prints parse errors to stderr)."""
    from openvino.frontend import FrontEndManager

    is_onnx = path.suffix.lower() == ".onnx"
    kind = "onnx" if is_onnx else "ir"
    if not FrontEndManager().load_by_framework(kind).supported(str(path)):
        what = "an ONNX model" if is_onnx else "an OpenVINO IR"
        raise AcfdError(f"OpenVINO cannot read {path} (not {what} it can parse)")
    return is_onnx


def pad_ceil_maxpools(model: Any) -> int:
    """Rewrite every ceil-mode MaxPool (kernel k >= stride s, no padding) as floor mode
    with ``s - 1`` pixels of end padding, in place; returns how many were rewritten.

    The network downsamples with MaxPool(3, 2, ceil_mode=True), which PyTorch and ONNX
    Runtime apply to a 2-pixel map (one output), but OpenVINO's shape inference refuses a
    kernel larger than its input: inputs with a side of about 125..191 pixels (acfd-tiny)
    fail at run time. Both forms give ``ceil((n - k) / s) + 1`` outputs for every n, and
    max-pool padding is never selected, so the outputs are the same (tested against ONNX
    Runtime at several sizes, tests/test_openvino.py)."""
    count = 0
    for op in model.get_ops():
        if op.get_type_name() != "MaxPool":
            continue
        attrs = op.get_attributes()
        kernel, strides = list(attrs.get("kernel", [])), list(attrs.get("strides", []))
        if (
            attrs.get("rounding_type") in ("ceil", "ceil_torch")
            and attrs.get("auto_pad") in ("explicit", "notset")
            and not any(attrs.get("pads_begin", [])) and not any(attrs.get("pads_end", []))
            and kernel and len(kernel) == len(strides) and all(k >= s for k, s in zip(kernel, strides))
            and all(d == 1 for d in attrs.get("dilations", [1] * len(kernel)))
        ):  # fmt: skip
            op.set_attribute("pads_end", [s - 1 for s in strides])
            op.set_attribute("rounding_type", "floor")
            count += 1
    if count:
        model.validate_nodes_and_infer_types()
    return count


def constant_types(model: Any) -> Counter[str]:
    """How many Constant ops of each element type (``{'f32': 329, 'i64': 73}``); in a
    converted model the weights are the floating-point constants."""
    return Counter(op.get_element_type().get_type_name() for op in model.get_ops() if op.get_type_name() == "Constant")


def acfd_metadata(model: Any) -> dict[str, str]:
    """The metadata acfd-export wrote, where OpenVINO keeps it: an IR's rt_info section
    ``acfd``, or (an ONNX file read by ``convert_model``) its metadata_props in the section
    ``framework``; empty where neither holds it."""
    for section in (IR_RT_SECTION, "framework"):
        try:
            found = ir_metadata(model, section)
        except Exception:  # a section acfd did not write may hold nested entries
            continue
        if "precision" in found or "input" in found:
            return found
    return {}


def artifact_precision(model: Any) -> str:
    """``fp32``/``fp16``/``int8`` of the artifact: the ``precision`` metadata acfd-export
    writes (an IR's rt_info section ``acfd``; ``convert_model`` puts an ONNX file's
    metadata_props in the section ``framework``), else what the graph holds: a Q/DQ
    model has FakeQuantize ops or 8-bit weights, an fp16 one fp16 weights."""
    for section in (IR_RT_SECTION, "framework"):
        try:
            value = ir_metadata(model, section).get("precision")
        except Exception:  # a section acfd did not write may hold nested entries
            value = None
        if value in ("fp32", "fp16", "int8"):
            return value
    types = constant_types(model)
    if any(op.get_type_name() == "FakeQuantize" for op in model.get_ops()) or types.keys() & {"i8", "u8"}:
        return "int8"
    return "fp16" if "f16" in types else "fp32"


def ir_metadata(model: Any, section: str = IR_RT_SECTION) -> dict[str, str]:
    """The acfd metadata an IR carries (rt_info section ``acfd``, or another ``section``;
    empty if there is none)."""
    if not model.has_rt_info([section]):
        return {}
    return {str(k): str(v.astype(str)) for k, v in dict(model.get_rt_info()[section]).items()}


def read_ir_metadata(xml_path: str | Path) -> dict[str, str]:
    """The metadata acfd-export stored in an IR's rt_info (empty if there is none)."""
    ov = _import_ov()
    xml_path = require_file(xml_path, "OpenVINO IR")
    try:
        model = ov.Core().read_model(str(xml_path))
    except Exception as exc:
        raise AcfdError(f"OpenVINO cannot read {xml_path} ({_one_line(exc)})") from None
    return ir_metadata(model)


def file_precision(path: str | Path) -> str:
    """The precision an OpenVINO-readable file declares, for listings (``unknown`` where
    OpenVINO is missing or cannot read it).

    An ONNX file's recorded precision is read from its metadata, as ONNX Runtime's runner
    reads it (the same ``metadata_props`` ``convert_model`` would put in rt_info), without
    converting the whole model; only a file without one is converted and inspected."""
    path = Path(path)
    try:
        if path.suffix.lower() == ".onnx":
            _import_ov()
            _check_parsable(path)
            recorded = recorded_precision(path)
            if recorded is not None:
                return recorded
        return artifact_precision(read_model(path))
    except AcfdError:
        return "unknown"

"""OpenVINO IR (``.xml`` + ``.bin``) from an acfd ONNX file, with the ONNX's metadata.

Two traps this module closes:

* ``openvino.save_model`` compresses fp32 weights to fp16 unless told not to
  (``compress_to_fp16=True`` is its default). An "fp32" IR must hold fp32 weights, so the
  IR is written with ``compress_to_fp16=False`` and the saved file is read back and its
  constants' element types compared with the converted model's.
* An IR is two files. Both are written under a hidden temporary folder beside the target
  and moved into place when complete (an old ``.xml`` removed first, then the ``.bin``,
  the ``.xml`` last), so an interrupted run never leaves an ``.xml`` that looks complete
  or pairs with another ``.bin``.

The graph is the ONNX's, converted by ``openvino.convert_model``, with one exact rewrite:
ceil-mode max-pools become floor mode with end padding, which OpenVINO accepts on the
2-pixel maps of small inputs (see ``runtime.openvino_model.pad_ceil_maxpools``).

The metadata (the keys acfd-export writes into the ONNX ``metadata_props``: config, input
contract, precision, ...) goes into the IR's ``rt_info`` under the section ``acfd``, where
:func:`read_ir_metadata` and the OpenVINO runner find it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from acfd_deploy.errors import AcfdError
from acfd_deploy.export.onnx_export import read_metadata
from acfd_deploy.fileio import fsync_tree, require_file
from acfd_deploy.runtime.openvino_model import IR_RT_SECTION, _import_ov, constant_types, read_model

__all__ = ["constant_types", "write_ir"]


def write_ir(
    onnx_path: str | os.PathLike[str], xml_path: str | os.PathLike[str], metadata: dict[str, str] | None = None
) -> tuple[Path, Path]:
    """Convert ``onnx_path`` to IR at ``xml_path`` (and the ``.bin`` beside it) with the
    weights in their own precision (no fp16 compression) and ``metadata`` in rt_info
    (``None``: the ONNX file's own metadata_props). Returns ``(xml, bin)``."""
    ov = _import_ov()
    onnx_path, xml_path = Path(onnx_path), Path(xml_path)
    if xml_path.suffix.lower() != ".xml":
        raise AcfdError(f"an OpenVINO IR is written to a .xml path, not {xml_path.name}")
    require_file(onnx_path, "ONNX file")
    if metadata is None:
        metadata = read_metadata(onnx_path)
    bad = [k for k, v in metadata.items() if not isinstance(k, str) or not isinstance(v, str)]
    if bad:
        raise AcfdError(f"IR metadata must map strings to strings; not so for {', '.join(map(str, bad))}")
    model = read_model(onnx_path)  # convert_model, and ceil-mode max-pools made safe for small inputs
    for key, value in metadata.items():
        model.set_rt_info(value, [IR_RT_SECTION, key])
    expected = constant_types(model)
    bin_path = xml_path.with_suffix(".bin")
    xml_path.parent.mkdir(parents=True, exist_ok=True)
    tmpdir = Path(tempfile.mkdtemp(prefix=f".{xml_path.stem}.", suffix=".partial", dir=xml_path.parent))
    try:
        tmp_xml = tmpdir / xml_path.name
        ov.save_model(model, str(tmp_xml), compress_to_fp16=False)
        saved = constant_types(ov.Core().read_model(str(tmp_xml)))
        if saved != expected:
            raise AcfdError(f"the IR's weights changed type when saved: {dict(expected)} -> {dict(saved)}")
        fsync_tree(tmpdir)  # the bytes reach the disk before the names do
        # an old .xml must never sit beside the new .bin: remove it first, so an interruption
        # leaves at worst a .bin without its .xml, which no reader takes for a model
        xml_path.unlink(missing_ok=True)
        os.replace(tmpdir / bin_path.name, bin_path)
        os.replace(tmp_xml, xml_path)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    return xml_path, bin_path

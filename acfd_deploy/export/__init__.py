"""From the training graph to verified inference artifacts (ONNX fp32/fp16/int8, TensorRT).

``options`` (what to do), ``source`` (which weights), ``steps`` (one per artifact: build
its files), ``exporter`` (the staged run: build, verify, record, swap in), ``manifest``
(export.json) and ``report`` (the table); the formats: ``onnx_export``, ``fp16``,
``int8`` (Q/DQ calibration), ``tensorrt`` (Polygraphy build, profile, engine precision).
Heavy dependencies (onnxruntime, TensorRT) are imported where used.
"""

from acfd_deploy.export.exporter import ExportResult, run_export
from acfd_deploy.export.options import ExportOptions

__all__ = ["ExportOptions", "ExportResult", "run_export"]

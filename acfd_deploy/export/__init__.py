"""From the training graph to verified inference artifacts (ONNX fp32/fp16/int8, TensorRT).

Modules: ``onnx_export`` (export, checker, simplify-if-equal, metadata), ``fp16``,
``int8`` (Q/DQ calibration), ``tensorrt`` (Polygraphy build, profile, sidecar, engine
precision check), ``exporter`` (the whole ``acfd-export`` run and its manifest).
Heavy dependencies (onnxruntime, TensorRT) are imported where used.
"""

from acfd_deploy.export.exporter import ExportOptions, ExportResult, format_table, run_export

__all__ = ["ExportOptions", "ExportResult", "format_table", "run_export"]

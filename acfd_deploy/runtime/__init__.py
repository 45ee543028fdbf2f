"""Runners: one small interface over every backend (PyTorch, ONNX Runtime, TensorRT).

Optional backends are imported inside the runner that needs them, so importing this
package never requires onnxruntime or TensorRT.
"""

from acfd_deploy.runtime.base import Runner

__all__ = ["Runner"]

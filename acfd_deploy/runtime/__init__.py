"""Runners: one small interface over every backend (PyTorch, ONNX Runtime, TensorRT,
OpenVINO, a Triton server, ...),
and one registry that picks the runner for a model reference.

Optional backends are imported inside the runner that needs them, so importing this
package never requires onnxruntime, TensorRT or any other optional dependency.
"""

from acfd_deploy.runtime.base import Runner
from acfd_deploy.runtime.device import Device, parse_device, resolve_device
from acfd_deploy.runtime.registry import Backend, artifact_precision, backend_for, load_runner, register

__all__ = ["Backend", "Device", "Runner", "artifact_precision", "backend_for", "load_runner", "parse_device", "register", "resolve_device"]

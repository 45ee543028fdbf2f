"""Glue between Triton's Python backend and the handlers, shared by both ``model.py`` files.

``triton_python_backend_utils`` exists only inside the backend's stub process, so it is
passed in (``pb``) rather than imported here: this module imports anywhere, and the
``model.py`` files stay a few lines each.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from acfd_deploy.errors import AcfdError, one_line
from acfd_deploy.runtime.base import Runner
from acfd_deploy.runtime.registry import load_runner
from acfd_deploy.serve.handlers import RequestError
from acfd_deploy.tritonrepo.params import ModelParams


def read_config(args: Mapping[str, str]) -> tuple[dict[str, Any], ModelParams]:
    """The model's config (as Triton completed it) and our parameters from it."""
    config = json.loads(args["model_config"])
    return config, ModelParams.from_parameters(config.get("parameters", {}))


def set_threads(params: ModelParams) -> None:
    """Torch intra-op threads of this instance (post-processing runs in torch): the
    launcher divides the cores among instances so they do not oversubscribe them."""
    if params.threads > 0:
        import torch

        torch.set_num_threads(params.threads)


def load_local_runner(params: ModelParams, max_batch: int = 1) -> Runner:
    """The model run in this process through the runner registry, as acfd-detect would
    (with the backend's defaults for batches of up to ``max_batch`` images)."""
    if not params.artifact:
        raise AcfdError("the model config names no artifact (parameter 'artifact')")
    return load_runner(params.artifact, device=params.device, batch=max_batch)


def input_array(pb: Any, request: Any, name: str) -> np.ndarray | None:
    tensor = pb.get_input_tensor_by_name(request, name)
    return None if tensor is None else tensor.as_numpy()


def answer(pb: Any, requests: list, handler: Any, input_name: str, outputs: Any) -> list:
    """One response per request, whatever happens: the handler's result as output tensors
    (``outputs(result) -> {name: array}``), or that request's own error; an exception that
    escapes the handler answers every request of the batch with an internal error instead
    of leaving them unanswered."""
    try:
        results = handler([input_array(pb, r, input_name) for r in requests])
    except Exception as exc:  # never let one exception leave the whole batch unanswered
        results = [RequestError(f"internal error: {type(exc).__name__}: {one_line(exc, 200)}", internal=True)] * len(requests)
    return [
        error_response(pb, result)
        if isinstance(result, RequestError)
        else pb.InferenceResponse(output_tensors=[pb.Tensor(k, v) for k, v in outputs(result).items()])
        for result in results
    ]


def error_response(pb: Any, error: RequestError) -> Any:
    """A response carrying only an error: INVALID_ARG for bad input, INTERNAL for ours."""
    code_name = "INTERNAL" if error.internal else "INVALID_ARG"
    try:
        triton_error = pb.TritonError(str(error), getattr(pb.TritonError, code_name))
    except (AttributeError, TypeError):  # older backends: message only
        triton_error = pb.TritonError(str(error))
    return pb.InferenceResponse(output_tensors=[], error=triton_error)


class BlsRunner(Runner):
    """The Runner interface over another model of the same server, called through BLS
    (business logic scripting): how the stock server's end-to-end ``acfd`` reaches the
    ``onnxruntime_onnx`` / ``tensorrt_plan`` engine. Batches above ``max_batch`` are split."""

    def __init__(self, pb: Any, model_name: str, max_batch: int, min_size: int, precision: str = "unknown") -> None:
        self.pb = pb
        self.model_name = model_name
        self.max_batch = max(1, max_batch)
        self.min_size = min_size
        self.precision = precision
        self.name = f"triton-bls:{model_name}"

    def infer(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        images = np.ascontiguousarray(images, dtype=np.float32)
        boxes, scores = [], []
        for start in range(0, len(images), self.max_batch):
            request = self.pb.InferenceRequest(
                model_name=self.model_name,
                requested_output_names=["boxes", "scores"],
                inputs=[self.pb.Tensor("images", images[start : start + self.max_batch])],
            )
            response = request.exec()
            if response.has_error():
                raise AcfdError(f"the engine model {self.model_name!r} failed: {response.error().message()}")
            boxes.append(self.pb.get_output_tensor_by_name(response, "boxes").as_numpy())
            scores.append(self.pb.get_output_tensor_by_name(response, "scores").as_numpy())
        return np.concatenate(boxes).astype(np.float32, copy=False), np.concatenate(scores).astype(np.float32, copy=False)

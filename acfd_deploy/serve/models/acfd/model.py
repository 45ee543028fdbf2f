"""Triton Python-backend model ``acfd``: encoded image bytes in, detections out.

The same :class:`~acfd_deploy.pipeline.Detector` as acfd-detect (decoding, resizing,
post-processing, NMS), so a file's bytes give the detections acfd-detect writes for that
file. The network runs either here (``engine: local``, what acfd-serve does: the artifact
in this process, no extra hop, and nothing to refuse it while the server drains on
SIGTERM) or in the engine model of the same server through BLS (``engine:
bls:acfd_engine``, the stock-server repository, whose engine is an ``onnxruntime_onnx`` or
``tensorrt_plan`` model). Each request of a batch is answered on its own: a bad image gets
an error naming the problem, the others their detections.
"""

import triton_python_backend_utils as pb_utils  # exists only inside the stub

from acfd_deploy.pipeline.detector import Detector, DetectorConfig
from acfd_deploy.runtime.base import Runner
from acfd_deploy.serve.backend import BlsRunner, answer, load_local_runner, read_config, set_threads
from acfd_deploy.serve.handlers import EndToEndHandler


class TritonPythonModel:
    runner: Runner | None = None  # until initialize has loaded it

    def initialize(self, args: dict) -> None:
        config, params = read_config(args)
        set_threads(params)
        max_batch = max(1, int(config.get("max_batch_size", 1)))
        runner: Runner = (
            BlsRunner(pb_utils, params.bls_model, max_batch, params.min_size, params.precision)
            if params.bls_model
            else load_local_runner(params, max_batch)
        )
        self.runner = runner
        detector_config = DetectorConfig(
            scales=params.scales, keep_ratio=params.keep_ratio, batch_size=max_batch, max_pixels=params.max_pixels
        )
        self.handler = EndToEndHandler(Detector(runner, detector_config), conf=params.conf, max_pixels=params.max_pixels)

    def execute(self, requests: list) -> list:
        return answer(pb_utils, requests, self.handler, "image", lambda result: result)

    def finalize(self) -> None:
        if self.runner is not None:
            self.runner.close()

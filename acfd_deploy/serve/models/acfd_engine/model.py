"""Triton Python-backend model ``acfd_engine``: the raw ACFD network, on acfd-serve's server.

The server acfd-serve runs (PyTriton's bundled ``tritonserver``) has only the Python
backend, so this model runs the artifact with acfd-deploy's own runner (``load_runner``,
as acfd-detect does: PyTorch, ONNX Runtime, TensorRT or OpenVINO). It serves the contract of the
stock server's ``onnxruntime_onnx`` / ``tensorrt_plan`` engine that
``write_model_repository`` writes: ``images FP32 [3, -1, -1]`` RGB 0..255 ->
``boxes FP32 [-1, 4]``, ``scores FP32 [-1]``. Each request of a batch is answered on its
own: a bad one gets an error, the rest run.
"""

import triton_python_backend_utils as pb_utils  # exists only inside the stub

from acfd_deploy.runtime.base import Runner
from acfd_deploy.serve.backend import answer, load_local_runner, read_config, set_threads
from acfd_deploy.serve.handlers import EngineHandler


class TritonPythonModel:
    runner: Runner | None = None  # until initialize has loaded it

    def initialize(self, args: dict) -> None:
        config, params = read_config(args)
        set_threads(params)
        self.runner = load_local_runner(params, max(1, int(config.get("max_batch_size", 1))))
        self.handler = EngineHandler(self.runner, min_size=self.runner.min_size)

    def execute(self, requests: list) -> list:
        return answer(pb_utils, requests, self.handler, "images", lambda result: {"boxes": result[0], "scores": result[1]})

    def finalize(self) -> None:
        if self.runner is not None:
            self.runner.close()

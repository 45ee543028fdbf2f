"""Triton Python-backend model ``acfd_e2e`` on acfd-serve's server: decoded pixels in,
detections out, from an end-to-end artifact (acfd-export --end2end).

The stock server runs the same contract with no Python at all (``onnxruntime_onnx`` /
``tensorrt_plan``, written by acfd-export --triton-repo); PyTriton's bundled server has
only the Python backend, so here the artifact runs with acfd-deploy's runner:
``images UINT8 [b, H, W, 3]`` RGB -> ``num_dets INT32 [b, 1]``, ``det_boxes FP32
[b, 100, 4]``, ``det_scores FP32 [b, 100]``. Each request of a batch is answered on its
own: a bad one gets an error, the rest run.
"""

import triton_python_backend_utils as pb_utils  # exists only inside the stub

from acfd_deploy.runtime.base import Runner
from acfd_deploy.serve.backend import answer, load_local_runner, read_config, set_threads
from acfd_deploy.serve.handlers import PixelsHandler


class TritonPythonModel:
    runner: Runner | None = None  # until initialize has loaded it

    def initialize(self, args: dict) -> None:
        _, params = read_config(args)
        set_threads(params)
        self.runner = load_local_runner(params)
        self.handler = PixelsHandler(self.runner, max_pixels=params.max_pixels)

    def execute(self, requests: list) -> list:
        return answer(pb_utils, requests, self.handler, "images", lambda result: result)

    def finalize(self) -> None:
        if self.runner is not None:
            self.runner.close()

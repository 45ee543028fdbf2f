"""Serving behind NVIDIA Triton Inference Server.

* :func:`write_model_repository`: a repository for the stock server (``acfd-export
  --triton-repo``): the verified engine as ``onnxruntime_onnx`` / ``tensorrt_plan``.
* :func:`write_serve_repository` + :class:`TritonServer`: what ``acfd-serve`` runs
  (PyTriton's bundled server, Python-backend models around acfd-deploy's runners).
* ``acfd_deploy.runtime.triton_runner``: the ``triton://host:port/model`` client runner.

Nothing here imports tritonclient or the server at import time.
"""

from acfd_deploy.serve.repository import check_repository_dir, choose_artifact, write_model_repository, write_serve_repository
from acfd_deploy.serve.server import TritonServer, find_tritonserver

__all__ = [
    "TritonServer",
    "check_repository_dir",
    "choose_artifact",
    "find_tritonserver",
    "write_model_repository",
    "write_serve_repository",
]

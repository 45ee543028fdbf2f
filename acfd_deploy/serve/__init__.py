"""Serving behind NVIDIA Triton Inference Server.

* :func:`serve` with :class:`ServeOptions` (``app``): what ``acfd-serve`` runs, PyTriton's
  bundled server on a repository from :func:`write_serve_repository` (``repository``),
  Python-backend models around acfd-deploy's runners, launched by :class:`TritonServer`.
* :func:`write_model_repository` (``stock``): a repository for the stock server
  (``acfd-export --triton-repo``): the verified engine as ``onnxruntime_onnx`` /
  ``tensorrt_plan``; :func:`choose_artifact` picks it from an export folder.
  With an end-to-end artifact (acfd-export --end2end), ``acfd_e2e`` (``e2e_repo``): the
  graph itself, decoded pixels in, faces out, no Python backend.
* :func:`provenance` (``verified``): what the ``export.json`` beside a model says about it.
* The ``triton://host:port/model`` client runner lives in the runtime layer
  (``acfd_deploy.runtime.triton_runner``), reached through the runner registry.

Nothing here imports tritonclient or the server at import time.
"""

from acfd_deploy.serve.app import ServeOptions, serve
from acfd_deploy.serve.repository import check_repository_dir, write_serve_repository
from acfd_deploy.serve.server import TritonServer, find_tritonserver
from acfd_deploy.serve.stock import choose_artifact, write_model_repository
from acfd_deploy.serve.verified import Provenance, provenance

__all__ = [
    "Provenance",
    "ServeOptions",
    "TritonServer",
    "check_repository_dir",
    "choose_artifact",
    "find_tritonserver",
    "provenance",
    "serve",
    "write_model_repository",
    "write_serve_repository",
]

"""Serving behind NVIDIA Triton Inference Server.

* :func:`serve` with :class:`ServeOptions` (``app``): what ``acfd-serve`` runs, PyTriton's
  bundled server on a repository from :func:`write_serve_repository`, Python-backend
  models (``models/``) around acfd-deploy's runners, launched by :class:`TritonServer`.
* The repository writers themselves (:func:`write_model_repository` for the stock server,
  :func:`choose_artifact`, :func:`provenance`, ...) live in :mod:`acfd_deploy.tritonrepo`,
  below both acfd-export and acfd-serve; they are re-exported here. With an end-to-end
  artifact (acfd-export --end2end) the stock repository gets ``acfd_e2e``: the graph itself,
  decoded pixels in, faces out, no Python backend.
* The ``triton://host:port/model`` client runner lives in the runtime layer
  (``acfd_deploy.runtime.triton_runner``), reached through the runner registry.

Nothing here imports tritonclient or the server at import time.
"""

from acfd_deploy.serve.app import ServeOptions, serve
from acfd_deploy.serve.server import TritonServer, find_tritonserver
from acfd_deploy.tritonrepo import (
    Provenance,
    check_repository_dir,
    choose_artifact,
    provenance,
    write_model_repository,
    write_serve_repository,
)

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

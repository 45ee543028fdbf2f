"""Triton model repositories: folders of ``<model>/config.pbtxt`` + ``<model>/1/<file>``,
written below both of their users, so that acfd-export (``--triton-repo``) and acfd-serve
share them without either importing the other.

* :func:`write_model_repository` (``stock``): a repository for the stock server: the
  verified engine as ``onnxruntime_onnx`` / ``tensorrt_plan``; :func:`choose_artifact`
  picks it from an export folder.
* :func:`write_serve_repository` (``repository``): the repository acfd-serve hands its
  bundled server (Python-backend models around acfd-deploy's runners, whose ``model.py``
  files are package data of :mod:`acfd_deploy.serve`).
* ``pbtxt`` (the configs), ``params`` (the models' parameters), ``readme`` (the stock
  repository's README), ``verified`` (what the ``export.json`` beside a model says).

Nothing here imports tritonclient or the server.
"""

from acfd_deploy.tritonrepo.repository import check_repository_dir, write_serve_repository
from acfd_deploy.tritonrepo.stock import choose_artifact, write_model_repository
from acfd_deploy.tritonrepo.verified import Provenance, provenance

__all__ = ["Provenance", "check_repository_dir", "choose_artifact", "provenance", "write_model_repository", "write_serve_repository"]

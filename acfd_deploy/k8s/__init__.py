"""Kubernetes manifests for ACFD replicas: the stock Triton server on a model repository
(``acfd-export --triton-repo DIR --k8s``) or the acfd-serve image (``acfd-serve
--print-k8s``). Plain dicts built in :mod:`~acfd_deploy.k8s.objects`, written as YAML by
:mod:`~acfd_deploy.k8s.render`; nothing here imports the serving code."""

from acfd_deploy.k8s.objects import DEFAULT_TRITON_IMAGE, K8S_VERSION, K8sOptions, Workload
from acfd_deploy.k8s.render import manifest_files, stream, write_manifests
from acfd_deploy.k8s.sources import read_repository_record, serve_workload, triton_workload

__all__ = [
    "DEFAULT_TRITON_IMAGE",
    "K8S_VERSION",
    "K8sOptions",
    "Workload",
    "manifest_files",
    "read_repository_record",
    "serve_workload",
    "stream",
    "triton_workload",
    "write_manifests",
]

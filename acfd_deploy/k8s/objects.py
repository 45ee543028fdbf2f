"""Kubernetes objects for ACFD replicas behind a Service, as plain dicts (pure functions).

One pod shape serves both ways in (the stock Triton server on a model repository, and the
acfd-serve image on an export folder): a container with Triton's three ports, probes on
Triton's health endpoints, a pre-stop pause and a grace period long enough to drain, and
the model files on a read-only volume. What differs (image, command, volume contents) is
a :class:`Workload`. The objects are built here and written by :mod:`acfd_deploy.k8s.render`;
they validate against the Kubernetes schemas of :data:`K8S_VERSION` (tests/test_k8s.py).

Why these numbers: on SIGTERM Triton stops answering health checks and new connections at
once and answers what it has already received, for up to ``drain_timeout_s`` (measured:
benchmarks/results/serve_failover.md). Kubernetes removes a terminating pod from the
Service's endpoints at the same time as it runs the pre-stop hook, so the hook's pause
(``pre_stop_s``) lets every proxy and client see that before the server stops listening;
the grace period covers pause + drain + a margin, after which the kubelet kills.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from acfd_deploy.errors import AcfdError

# the Kubernetes version whose schemas the manifests are checked against (strict)
K8S_VERSION = "1.30"
HTTP_PORT, GRPC_PORT, METRICS_PORT = 8000, 8001, 8002
# the Triton release acfd-deploy's serving was checked with (2.51 = NGC 24.10); a parameter
DEFAULT_TRITON_IMAGE = "nvcr.io/nvidia/tritonserver:24.10-py3"
SHA_ANNOTATION = "acfd-deploy/model-sha256"
APP_LABEL = "app.kubernetes.io/name"


@dataclass(frozen=True)
class K8sOptions:
    """What a cluster needs to be told; the defaults suit one small detector per pod."""

    name: str = "acfd"
    namespace: str | None = None
    image: str = DEFAULT_TRITON_IMAGE
    replicas: int = 2
    max_replicas: int = 8
    gpus: int = 0  # nvidia.com/gpu per pod; 0: CPU only
    cpu_request: str = "2"
    cpu_limit: str = "4"
    memory_request: str = "4Gi"
    memory_limit: str = "8Gi"
    cpu_target_percent: int = 70  # the HPA's target CPU utilization
    pre_stop_s: int = 10
    drain_timeout_s: int = 30
    claim: str = "acfd-models"  # the PersistentVolumeClaim that holds the model files
    storage: str = "1Gi"

    def check(self) -> None:
        if not self.name or not all(c.isalnum() or c == "-" for c in self.name) or not self.name[0].isalpha() or len(self.name) > 40:
            raise AcfdError(f"a Kubernetes name is lower-case letters, digits and '-', starting with a letter: got {self.name!r}")
        if self.name != self.name.lower():
            raise AcfdError(f"a Kubernetes name is lower case: got {self.name!r}")
        if self.replicas < 1 or self.max_replicas < self.replicas:
            raise AcfdError(f"replicas must be at least 1 and at most max replicas (got {self.replicas}, {self.max_replicas})")
        if self.gpus < 0:
            raise AcfdError(f"GPUs per pod must not be negative, got {self.gpus}")
        if self.pre_stop_s < 0 or self.drain_timeout_s < 1:
            raise AcfdError("the pre-stop pause must not be negative and the drain timeout must be at least 1 s")

    @property
    def grace_period_s(self) -> int:
        """Pause + drain + margin for the unload: the kubelet kills only after that."""
        return self.pre_stop_s + self.drain_timeout_s + 10


@dataclass(frozen=True)
class Workload:
    """The part of the pod that depends on what is served."""

    command: list[str]
    args: list[str]
    mount_path: str  # where the claim is mounted, read-only
    sha256: str  # of the served artifact: a new export changes it and rolls the pods
    models: list[str] = field(default_factory=lambda: ["acfd_engine"])
    env: dict[str, str] = field(default_factory=dict)


def labels(opts: K8sOptions) -> dict[str, str]:
    return {APP_LABEL: opts.name, "app.kubernetes.io/component": "inference", "app.kubernetes.io/part-of": "acfd-deploy"}


def _meta(opts: K8sOptions, name: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name or opts.name, "labels": labels(opts)}
    if opts.namespace:
        meta["namespace"] = opts.namespace
    return meta


def _selector(opts: K8sOptions) -> dict[str, Any]:
    return {"matchLabels": {APP_LABEL: opts.name}}


def resources(opts: K8sOptions) -> dict[str, Any]:
    requests = {"cpu": opts.cpu_request, "memory": opts.memory_request}
    limits = {"cpu": opts.cpu_limit, "memory": opts.memory_limit}
    if opts.gpus:  # extended resources: limits (requests default to them)
        limits["nvidia.com/gpu"] = str(opts.gpus)
    return {"requests": requests, "limits": limits}


def _probe(path: str, period: int, failures: int) -> dict[str, Any]:
    return {"httpGet": {"path": path, "port": "http"}, "periodSeconds": period, "timeoutSeconds": 2, "failureThreshold": failures}


def container(opts: K8sOptions, work: Workload) -> dict[str, Any]:
    c: dict[str, Any] = {
        "name": "server",
        "image": opts.image,
        "imagePullPolicy": "IfNotPresent",
        "command": work.command,
        "args": work.args,
        "ports": [
            {"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"},
            {"name": "grpc", "containerPort": GRPC_PORT, "protocol": "TCP"},
            {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"},
        ],
        "resources": resources(opts),
        # loading the models may take minutes: liveness and readiness start after this
        "startupProbe": _probe("/v2/health/ready", 5, 120),
        "readinessProbe": _probe("/v2/health/ready", 5, 2),
        "livenessProbe": _probe("/v2/health/live", 10, 3),
        "lifecycle": {"preStop": {"exec": {"command": ["/bin/sh", "-c", f"sleep {opts.pre_stop_s}"]}}},
        "volumeMounts": [{"name": "models", "mountPath": work.mount_path, "readOnly": True}],
    }
    if work.env:
        c["env"] = [{"name": k, "value": v} for k, v in sorted(work.env.items())]
    return c


def deployment(opts: K8sOptions, work: Workload) -> dict[str, Any]:
    annotations = {
        SHA_ANNOTATION: work.sha256,
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(METRICS_PORT),
        "prometheus.io/path": "/metrics",
    }
    pod: dict[str, Any] = {
        "terminationGracePeriodSeconds": opts.grace_period_s,
        "containers": [container(opts, work)],
        "volumes": [{"name": "models", "persistentVolumeClaim": {"claimName": opts.claim, "readOnly": True}}],
    }
    if opts.gpus:
        pod["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(opts),
        "spec": {
            "replicas": opts.replicas,
            "selector": _selector(opts),
            # never below the wanted count while a new export rolls out: one extra pod at a time
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {"metadata": {"labels": labels(opts), "annotations": annotations}, "spec": pod},
        },
    }


def service(opts: K8sOptions) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(opts),
        "spec": {
            "type": "ClusterIP",
            "selector": {APP_LABEL: opts.name},
            "ports": [
                {"name": "http", "port": HTTP_PORT, "targetPort": "http", "protocol": "TCP"},
                {"name": "grpc", "port": GRPC_PORT, "targetPort": "grpc", "protocol": "TCP", "appProtocol": "grpc"},
                {"name": "metrics", "port": METRICS_PORT, "targetPort": "metrics", "protocol": "TCP"},
            ],
        },
    }


def disruption_budget(opts: K8sOptions) -> dict[str, Any]:
    """A node drain or upgrade never takes every replica at once."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _meta(opts),
        "spec": {"maxUnavailable": 1, "selector": _selector(opts)},
    }


def autoscaler(opts: K8sOptions) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _meta(opts),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": opts.name},
            "minReplicas": opts.replicas,
            "maxReplicas": opts.max_replicas,
            "metrics": [cpu_metric(opts)],
            # scale down slowly: a replica that loads a model for a minute is worth keeping
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300, "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]}},
        },
    }


def cpu_metric(opts: K8sOptions) -> dict[str, Any]:
    return {
        "type": "Resource",
        "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": opts.cpu_target_percent}},
    }


# the per-pod metric the Prometheus adapter rule in hpa.yaml's comment exposes: Triton's
# queue time per request (microseconds), averaged over a minute
QUEUE_METRIC = "acfd_queue_us_per_request"
QUEUE_TARGET_US = 50_000


def queue_metric() -> dict[str, Any]:
    """The custom-metric form of the HPA's metric (written as a comment in hpa.yaml)."""
    return {
        "type": "Pods",
        "pods": {"metric": {"name": QUEUE_METRIC}, "target": {"type": "AverageValue", "averageValue": str(QUEUE_TARGET_US)}},
    }


def volume_claim(opts: K8sOptions) -> dict[str, Any]:
    """Read by every replica at once (ReadOnlyMany); filled once (README.md says how)."""
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": _meta(opts, opts.claim),
        "spec": {"accessModes": ["ReadOnlyMany"], "resources": {"requests": {"storage": opts.storage}}},
    }


def inference_service(opts: K8sOptions, work: Workload, storage_uri: str) -> dict[str, Any]:
    """KServe's InferenceService on its Triton runtime (``kserve-tritonserver``): the same
    repository from ``storage_uri``, KServe doing the Deployment, Service and scaling."""
    meta = _meta(opts)
    meta["annotations"] = {SHA_ANNOTATION: work.sha256}
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": meta,
        "spec": {
            "predictor": {
                "minReplicas": opts.replicas,
                "maxReplicas": opts.max_replicas,
                "model": {
                    "modelFormat": {"name": "triton"},
                    "runtime": "kserve-tritonserver",
                    "protocolVersion": "v2",
                    "storageUri": storage_uri,
                    "resources": resources(opts),
                },
            }
        },
    }

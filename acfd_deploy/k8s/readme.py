"""The README.md beside the manifests: apply, fill the volume, scale, roll out a new
verified export, change the volume to an init container, find the metrics."""

from __future__ import annotations

from acfd_deploy.k8s.objects import GRPC_PORT, HTTP_PORT, K8S_VERSION, METRICS_PORT, SHA_ANNOTATION, K8sOptions, Workload


def k8s_readme(opts: K8sOptions, work: Workload, *, what: str, kserve: bool) -> str:
    stock = work.command == ["tritonserver"]
    fill = (
        "the model repository folder (the one acfd-export wrote with `--triton-repo`) at the volume's root"
        if stock
        else "the acfd-export output folder (the model file with its `export.json` beside it) at the volume's root"
    )
    n = opts.name
    lines = [
        f"# Kubernetes manifests for {what}",
        "",
        f"Written by acfd-deploy; checked against the Kubernetes {K8S_VERSION} schemas (strict) in its test suite.",
        "",
        "| file | what |",
        "|---|---|",
        f"| `deployment.yaml` | {opts.replicas} replicas of `{opts.image}` (`{' '.join(work.command)}`), the models from the volume "
        f"`{opts.claim}` read-only at `{work.mount_path}`, probes on `/v2/health/ready` and `/v2/health/live` |",
        f"| `service.yaml` | ClusterIP `{n}`: HTTP {HTTP_PORT}, gRPC {GRPC_PORT}, metrics {METRICS_PORT} |",
        "| `pdb.yaml` | at most one replica down at a time during node drains |",
        f"| `hpa.yaml` | {opts.replicas} to {opts.max_replicas} replicas on CPU ({opts.cpu_target_percent}%); "
        "the queue-time form as a comment |",
        f"| `pvc.yaml` | the `{opts.claim}` claim ({opts.storage}, ReadOnlyMany) |",
        "| `kustomization.yaml` | all of the above for `kubectl apply -k` |",
    ]
    if kserve:
        lines.append("| `kserve-inferenceservice.yaml` | the alternative for clusters that run KServe (not in the kustomization) |")
    lines += [
        "",
        "## Apply",
        "",
        "```bash",
        "kubectl apply -f pvc.yaml",
        f"# fill the volume once with {fill}, e.g. through a pod that mounts it read-write:",
        "#   kubectl cp ./triton-repo <loader-pod>:/models  (then delete the loader pod)",
        "kubectl apply -k .",
        f"kubectl rollout status deployment/{n}",
        f"kubectl port-forward service/{n} {HTTP_PORT}:{HTTP_PORT} & curl -s localhost:{HTTP_PORT}/v2/health/ready && echo ready",
        "```",
        "",
        f"The image is never pulled by acfd-deploy: `{opts.image}` is a parameter (`image:` in deployment.yaml).",
    ]
    if stock:
        lines += [
            "A TensorRT plan runs only with the TensorRT version and GPU that built it: pick the tritonserver release whose",
            "TensorRT matches (the repository's README.md names it) and schedule the pods on that GPU model (a nodeSelector).",
            "The server runs with explicit model control (`--load-model` for each model of the repository), so files beside",
            "the models on the volume are not taken for models.",
        ]
    else:
        lines += [
            "Build the acfd-serve image yourself (acfd-deploy, its `serve` extra and nvidia-pytriton, as docs/serving.md says),",
            "and set `image:` to it. `--require-verified` makes a pod refuse a model its `export.json` does not list as passed.",
        ]
    lines += [
        "",
        "## Scale",
        "",
        f"`kubectl scale deployment/{n} --replicas=N` (the HPA then moves it between its bounds), or edit `hpa.yaml`. GPUs: "
        f"{'`nvidia.com/gpu: ' + str(opts.gpus) + '` per pod' if opts.gpus else 'none asked for; add `nvidia.com/gpu: 1` under `limits:`'}"
        " (and the NVIDIA device plugin on the nodes). gRPC keeps one HTTP/2 connection open per client, and a ClusterIP",
        "balances connections, not requests: balance gRPC per request with a service mesh or an L7 proxy, or use HTTP.",
        "",
        "## Roll out a new verified export",
        "",
        f"The pod template carries the served artifact's sha256 as the annotation `{SHA_ANNOTATION}` (`{work.sha256[:16]}...`,",
        "the sha256 acfd-export recorded in export.json). Copy the new export onto the volume (a new claim, or the same one),",
        "write these manifests again from it and apply: the new sha256 changes the pod template, so Kubernetes replaces the",
        "pods one at a time (`maxSurge: 1`, `maxUnavailable: 0`: never fewer ready replicas than asked for).",
        "",
        "## Draining",
        "",
        f"On deletion a pod leaves the Service's endpoints while its pre-stop hook pauses {opts.pre_stop_s} s; then the server",
        "gets SIGTERM, stops answering health checks and new connections, answers every request it has received (for up to",
        f"{opts.drain_timeout_s} s) and exits. `terminationGracePeriodSeconds: {opts.grace_period_s}` covers both. Clients should",
        "retry a request that fails with a connection error or HTTP 502/503/504 (an inference is safe to repeat): see",
        'docs/serving.md, "Scaling out", for the policy and the measured failover figures.',
        "",
        "## Keep the models elsewhere",
        "",
        "To copy the repository from object storage instead of a volume, replace the `models` volume with `emptyDir: {}` and",
        "add an init container that fills it before the server starts, e.g.:",
        "",
        "```yaml",
        "initContainers:",
        "- name: fetch-models",
        "  image: amazon/aws-cli:2.17.0",
        f'  args: ["s3", "sync", "s3://BUCKET/PATH/", "{work.mount_path}/"]',
        "  volumeMounts: [{name: models, mountPath: " + work.mount_path + "}]",
        "```",
        "",
        "(Triton itself also reads `--model-repository=s3://...` or `gs://...` with credentials in its environment.)",
        "",
        "## Metrics",
        "",
        f"Every pod serves Prometheus metrics on port {METRICS_PORT} at `/metrics` (the pod template's `prometheus.io/*`",
        "annotations say so to a scraper that reads them): `nv_inference_request_success`, `nv_inference_count` /",
        "`nv_inference_exec_count` (the mean executed batch), `nv_inference_queue_duration_us` (time waiting for an",
        "instance: scale out when it grows; `hpa.yaml` shows the autoscaler on it), `nv_gpu_utilization`.",
        "",
    ]
    return "\n".join(lines)

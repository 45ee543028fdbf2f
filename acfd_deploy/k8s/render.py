"""The manifests as files: YAML from PyYAML (deterministic: the objects' own key order, no
timestamps), a kustomization listing them, the HPA's custom-metric form as a comment, and
the README; written as one staged folder (a half-written set is never left behind)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from acfd_deploy.errors import AcfdError
from acfd_deploy.k8s import objects as k8s
from acfd_deploy.k8s.readme import k8s_readme
from acfd_deploy.staging import staged_folder

MARKER = "kustomization.yaml"
KSERVE_FILE = "kserve-inferenceservice.yaml"
PROMETHEUS_RULE = (
    '- seriesQuery: \'nv_inference_queue_duration_us{namespace!="",pod!=""}\'\n'
    "  resources: {overrides: {namespace: {resource: namespace}, pod: {resource: pod}}}\n"
    f'  name: {{as: "{k8s.QUEUE_METRIC}"}}\n'
    "  metricsQuery: >-\n"
    "    sum(rate(nv_inference_queue_duration_us{<<.LabelMatchers>>}[1m])) by (<<.GroupBy>>)\n"
    "    / clamp_min(sum(rate(nv_inference_request_success{<<.LabelMatchers>>}[1m])) by (<<.GroupBy>>), 1)\n"
)


def _yaml() -> Any:
    try:
        import yaml
    except ImportError:
        raise AcfdError("writing Kubernetes manifests needs PyYAML: pip install 'acfd-deploy[serve]' (or pip install pyyaml)") from None
    return yaml


def dump(obj: Any) -> str:
    """One object as YAML, keys in the order the builders wrote them."""
    return str(_yaml().safe_dump(obj, sort_keys=False, default_flow_style=False, width=120))


def commented(text: str, indent: str = "") -> str:
    return "".join(f"#{' ' if line else ''}{indent}{line}\n" for line in text.splitlines())


def hpa_text(opts: k8s.K8sOptions) -> str:
    """The CPU autoscaler, and as a comment the same on Triton's queue time per request
    through the Prometheus adapter (a custom metric needs the adapter installed)."""
    alternative = dump({"metrics": [k8s.queue_metric()]})
    return (
        dump(k8s.autoscaler(opts))
        + "#\n# Scale on Triton's queue time instead of CPU (the time requests wait for an instance: it grows\n"
        + "# first when replicas are short). With the Prometheus adapter, replace `metrics:` above with:\n#\n"
        + commented(alternative, "  ")
        + "#\n# and give the adapter this rule (its `rules.custom` list): mean queue time per request, us.\n#\n"
        + commented(PROMETHEUS_RULE, "  ")
    )


def stream(documents: Sequence[str]) -> str:
    """Several YAML documents as one ``kubectl apply -f -`` stream."""
    return "---\n" + "---\n".join(documents)


def manifest_files(opts: k8s.K8sOptions, work: k8s.Workload, *, kserve_uri: str | None, what: str) -> dict[str, str]:
    """File name -> text: the objects, the kustomization that applies them, the KServe
    alternative (``kserve_uri``: where KServe finds the repository; None: none), README.md."""
    opts.check()
    files = {
        "deployment.yaml": dump(k8s.deployment(opts, work)),
        "service.yaml": dump(k8s.service(opts)),
        "pdb.yaml": dump(k8s.disruption_budget(opts)),
        "hpa.yaml": hpa_text(opts),
        "pvc.yaml": dump(k8s.volume_claim(opts)),
    }
    kustomization = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "resources": list(files)}
    if opts.namespace:
        kustomization["namespace"] = opts.namespace
    files[MARKER] = dump(kustomization)
    if kserve_uri is not None:
        files[KSERVE_FILE] = dump(k8s.inference_service(opts, work, kserve_uri))
    files["README.md"] = k8s_readme(opts, work, what=what, kserve=kserve_uri is not None)
    return files


def write_manifests(target: str | os.PathLike[str], files: Mapping[str, str]) -> Path:
    """``files`` as the folder ``target``, swapped in whole (an earlier set is replaced)."""
    with staged_folder(Path(target), MARKER, "Kubernetes manifest folder") as stage:
        for name, text in files.items():
            (stage.path / name).write_text(text, encoding="utf-8")
        return stage.commit()


def serve_stream(opts: k8s.K8sOptions, work: k8s.Workload) -> str:
    """acfd-serve's manifests as one stream (``acfd-serve --print-k8s | kubectl apply -f -``)."""
    opts.check()
    docs = [k8s.volume_claim(opts), k8s.deployment(opts, work), k8s.service(opts), k8s.disruption_budget(opts)]
    return stream([*map(dump, docs), hpa_text(opts)])

"""Kubernetes manifests: every object validated offline against the Kubernetes JSON schemas
(kubernetes-validate, strict: an unknown field is an error) for the stated version; the
KServe InferenceService, whose CRD schema ships with no package, checked for the fields
KServe requires and its Kubernetes parts against the core schemas. The validator is shown
to reject broken manifests, so a pass means something."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

yaml = pytest.importorskip("yaml", reason="PyYAML is not installed (pip install 'acfd-deploy[serve]')")
kv = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is not installed (pip install 'acfd-deploy[dev]')")

from acfd_deploy.errors import AcfdError  # noqa: E402
from acfd_deploy.k8s import K8S_VERSION, K8sOptions, manifest_files, serve_workload, triton_workload  # noqa: E402
from acfd_deploy.k8s.objects import SHA_ANNOTATION, queue_metric  # noqa: E402
from acfd_deploy.k8s.render import KSERVE_FILE, MARKER, serve_stream  # noqa: E402
from tests.test_serve_units import export_folder, onnx_file  # noqa: E402, F401  (the fixture)

SHA = "0123456789abcdef" * 4
RECORD = {"sha256": SHA, "models": ["acfd_engine"], "platform": "tensorrt_plan"}


def validate(obj: dict[str, Any], version: str = K8S_VERSION) -> None:
    kv.validate(obj, version, strict=True)


def documents(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d is not None]


def kserve_errors(obj: dict[str, Any]) -> list[str]:
    """What KServe's v1beta1 CRD requires of an InferenceService on the Triton runtime, and
    its Kubernetes parts (metadata, resources) against the core schemas (strict)."""
    errors = []
    if obj.get("apiVersion") != "serving.kserve.io/v1beta1" or obj.get("kind") != "InferenceService":
        errors.append(f"not a v1beta1 InferenceService: {obj.get('apiVersion')} {obj.get('kind')}")
    predictor = (obj.get("spec") or {}).get("predictor")
    if not isinstance(predictor, dict):
        return [*errors, "spec.predictor is required"]
    model = predictor.get("model") or {}
    if not (model.get("modelFormat") or {}).get("name"):
        errors.append("spec.predictor.model.modelFormat.name is required")
    if model.get("modelFormat", {}).get("name") != "triton" or model.get("runtime") != "kserve-tritonserver":
        errors.append("not the Triton runtime")
    if model.get("protocolVersion") not in ("v1", "v2", "grpc-v2"):
        errors.append(f"protocolVersion {model.get('protocolVersion')!r}")
    if str(model.get("storageUri", "")).split("://")[0] not in ("pvc", "s3", "gs", "https"):
        errors.append(f"storageUri {model.get('storageUri')!r}")
    for key in ("minReplicas", "maxReplicas"):
        if not isinstance(predictor.get(key), int):
            errors.append(f"{key} must be an integer")
    # the Kubernetes types the CRD embeds, checked as parts of a Pod's first container
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": obj.get("metadata"),
        "spec": {"containers": [{"name": "kserve-container", "image": "x", "resources": model.get("resources", {})}]},
    }
    try:
        validate(pod)
    except kv.ValidationError as exc:
        errors.append(f"Kubernetes parts: {exc.message}")
    return errors


@pytest.fixture(scope="module")
def stock() -> dict[str, str]:
    opts = K8sOptions(gpus=1)
    return manifest_files(opts, triton_workload(RECORD, opts), kserve_uri="pvc://acfd-models/", what="a test repository")


def test_every_stock_manifest_validates_strictly(stock: dict[str, str]) -> None:
    kustomization = yaml.safe_load(stock[MARKER])
    assert set(kustomization["resources"]) == {"deployment.yaml", "service.yaml", "pdb.yaml", "hpa.yaml", "pvc.yaml"}
    kinds = []
    for name in kustomization["resources"]:
        for doc in documents(stock[name]):
            assert validate(doc) is None, name
            kinds.append(doc["kind"])
    assert sorted(kinds) == ["Deployment", "HorizontalPodAutoscaler", "PersistentVolumeClaim", "PodDisruptionBudget", "Service"]
    # and on the newest version the validator bundles (an API removed since would fail here)
    for name in kustomization["resources"]:
        for doc in documents(stock[name]):
            validate(doc, kv.utils.latest_version())


def test_stock_deployment_drains_probes_and_rolls_on_a_new_export(stock: dict[str, str]) -> None:
    dep = yaml.safe_load(stock["deployment.yaml"])
    pod = dep["spec"]["template"]
    spec, (c,) = pod["spec"], pod["spec"]["containers"]
    assert pod["metadata"]["annotations"][SHA_ANNOTATION] == SHA
    assert c["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready" and c["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert c["command"] == ["tritonserver"] and "--load-model=acfd_engine" in c["args"] and "--model-control-mode=explicit" in c["args"]
    exit_timeout = int(next(a for a in c["args"] if a.startswith("--exit-timeout-secs=")).split("=")[1])
    pause = int(c["lifecycle"]["preStop"]["exec"]["command"][-1].split()[-1])
    assert spec["terminationGracePeriodSeconds"] > pause + exit_timeout  # the kubelet kills only after the drain
    assert c["resources"]["limits"]["nvidia.com/gpu"] == "1" and c["resources"]["requests"]["memory"]
    assert {p["containerPort"] for p in c["ports"]} == {8000, 8001, 8002}
    assert {p["port"] for p in yaml.safe_load(stock["service.yaml"])["spec"]["ports"]} == {8000, 8001, 8002}
    assert spec["volumes"][0]["persistentVolumeClaim"]["claimName"] == yaml.safe_load(stock["pvc.yaml"])["metadata"]["name"]
    assert dep["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    # a new export: another sha256, another pod template (Kubernetes rolls the pods); else byte-identical output
    opts = K8sOptions(gpus=1)
    again = manifest_files(opts, triton_workload(RECORD, opts), kserve_uri="pvc://acfd-models/", what="a test repository")
    assert again == stock
    other = manifest_files(opts, triton_workload({**RECORD, "sha256": "f" * 64}, opts), kserve_uri=None, what="x")
    assert yaml.safe_load(other["deployment.yaml"])["spec"]["template"] != pod and KSERVE_FILE not in other


def test_hpa_custom_metric_comment_is_a_valid_alternative(stock: dict[str, str]) -> None:
    """The commented queue-time form, uncommented into the HPA, validates too."""
    text = stock["hpa.yaml"]
    hpa = yaml.safe_load(text)
    block = text.split("replace `metrics:` above with:\n#\n", 1)[1].split("#\n", 1)[0]
    alternative = yaml.safe_load("\n".join(line[4:] for line in block.splitlines()))
    assert alternative == {"metrics": [queue_metric()]}
    hpa["spec"]["metrics"] = alternative["metrics"]
    validate(hpa)
    assert "nv_inference_queue_duration_us" in text and "seriesQuery" in text


@pytest.mark.parametrize(
    "break_it, message",
    [
        (lambda d: d["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"].update(pathh="/x"), "pathh"),
        (lambda d: d["spec"].update(replicas="two"), "two"),
        (lambda d: d["spec"]["template"]["spec"]["containers"][0].pop("name"), "name"),
        (lambda d: d["spec"]["template"]["spec"].update(terminationGracePeriod=30), "terminationGracePeriod"),
    ],
    ids=["misspelt field", "wrong type", "missing required", "unknown field"],
)
def test_the_validator_rejects_a_broken_deployment(stock: dict[str, str], break_it: Any, message: str) -> None:
    dep = copy.deepcopy(yaml.safe_load(stock["deployment.yaml"]))
    break_it(dep)
    with pytest.raises(kv.ValidationError, match=message):
        validate(dep)


def test_kserve_inference_service_has_what_kserve_requires(stock: dict[str, str]) -> None:
    isvc = yaml.safe_load(stock[KSERVE_FILE])
    assert kserve_errors(isvc) == []
    assert isvc["metadata"]["annotations"][SHA_ANNOTATION] == SHA
    assert isvc["spec"]["predictor"]["model"]["storageUri"] == "pvc://acfd-models/"
    broken = copy.deepcopy(isvc)
    del broken["spec"]["predictor"]["model"]["modelFormat"]["name"]
    broken["spec"]["predictor"]["model"]["resources"]["limits"]["cpu"] = {"cores": 4}
    errors = kserve_errors(broken)
    assert any("modelFormat.name" in e for e in errors) and any("Kubernetes parts" in e for e in errors), errors


def test_acfd_serve_print_k8s_validates(capsys: pytest.CaptureFixture[str], tmp_path: Path, onnx_file: Path) -> None:  # noqa: F811
    from acfd_deploy.cli.serve import main
    from acfd_deploy.fileio import sha256_file

    model = export_folder(tmp_path / "export", onnx_file, True)
    assert main(["--print-k8s", "--model", str(model), "--imgsz", "320", "430", "--drain-timeout", "40", "--k8s-gpus", "1"]) == 0
    docs = documents(capsys.readouterr().out)
    assert [d["kind"] for d in docs] == ["PersistentVolumeClaim", "Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler"]
    for doc in docs:
        validate(doc)
    pod = docs[1]["spec"]["template"]
    (c,) = pod["spec"]["containers"]
    assert c["command"] == ["acfd-serve"] and pod["metadata"]["annotations"][SHA_ANNOTATION] == sha256_file(model)
    args = c["args"]
    assert args[args.index("--model") + 1] == "/models/acfd-tiny.onnx" and "--require-verified" in args
    assert args[args.index("--drain-timeout") + 1] == "40" and args[args.index("--imgsz") + 1 : args.index("--imgsz") + 3] == ["320", "430"]
    assert pod["spec"]["terminationGracePeriodSeconds"] >= 40 + 10
    assert main(["--print-k8s", "--model", "triton://127.0.0.1:1/acfd_engine"]) == 2


def test_export_writes_manifests_beside_the_repository(tmp_path: Path, onnx_file: Path) -> None:  # noqa: F811
    """The export's last steps (repository, then manifests) on a finished export folder."""
    from acfd_deploy.export.exporter import write_k8s, write_triton_repository
    from acfd_deploy.export.options import ExportOptions
    from acfd_deploy.export.options import validate as validate_options

    artifact = export_folder(tmp_path / "export", onnx_file, True)
    opts = ExportOptions(
        out=tmp_path / "export", triton_repo=tmp_path / "repo", k8s_dir=tmp_path / "repo-k8s", k8s_image="registry.local/triton:1"
    )
    validate_options(opts)
    repo = write_triton_repository(opts, tmp_path / "export")
    folder = write_k8s(opts, repo)
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["README.md", MARKER, KSERVE_FILE, "deployment.yaml", "service.yaml", "pdb.yaml", "hpa.yaml", "pvc.yaml"]
    )
    dep = yaml.safe_load((folder / "deployment.yaml").read_text())
    record = json.loads((repo / "acfd-repository.json").read_text())
    assert (
        dep["spec"]["template"]["metadata"]["annotations"][SHA_ANNOTATION]
        == record["sha256"]
        == json.loads((tmp_path / "export" / "export.json").read_text())["artifacts"][0]["sha256"]
    )
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    assert c["image"] == "registry.local/triton:1" and "nvidia.com/gpu" not in c["resources"]["limits"]  # ONNX: CPU unless asked
    readme = (folder / "README.md").read_text()
    for needed in ("kubectl apply -k", "kubectl scale", SHA_ANNOTATION, "initContainers", "/metrics", "nv_inference_queue_duration_us"):
        assert needed in readme, needed
    assert artifact.is_file()
    write_k8s(opts, repo)  # again over itself: fine
    for bad, why in (
        ({"k8s_dir": tmp_path / "repo" / "k8s"}, "outside --triton-repo"),
        ({"triton_repo": None}, "add --triton-repo"),
    ):
        with pytest.raises(AcfdError, match=why):
            validate_options(ExportOptions(**{**opts.__dict__, **bad}))


def test_export_cli_k8s_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from acfd_deploy.cli.export import _k8s_dir, build_parser, main

    args = build_parser().parse_args(["--triton-repo", str(tmp_path / "tr"), "--k8s"])
    assert _k8s_dir(args) == tmp_path / "tr-k8s"
    assert _k8s_dir(build_parser().parse_args(["--triton-repo", "a", "--k8s", "b"])) == Path("b")
    assert main(["--k8s", "--out", str(tmp_path / "o")]) == 2
    assert "add --triton-repo" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_options_refuse_what_no_cluster_takes() -> None:
    with pytest.raises(AcfdError, match="lower-case"):
        K8sOptions(name="ACFD_1").check()
    with pytest.raises(AcfdError, match="replicas"):
        K8sOptions(replicas=3, max_replicas=2).check()
    opts = K8sOptions()
    text = serve_stream(opts, serve_workload(None, SHA, opts, []))
    assert "--model" not in text  # the demo model: no file on the volume

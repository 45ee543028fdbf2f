"""What an export is asked to do, and the checks on it that need no file to be read."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from acfd_deploy.errors import AcfdError
from acfd_deploy.runtime.device import cuda_status, parse_device, resolve_device
from acfd_deploy.tritonrepo import check_repository_dir
from acfd_deploy.verify.accuracy import DEFAULT_VAL_IMAGES

ENGINES = ("auto", "onnx", "tensorrt")
DEFAULT_IMGSZ = (640, 640)
DEFAULT_OUT = Path("exports")


@dataclass
class ExportOptions:
    weights: Path | None = None  # None: the bundled demo model (or --random-init)
    config: str | None = None
    random_init: bool = False
    fp16: bool = False
    int8: bool = False
    openvino: bool = False
    # end-to-end artifacts (uint8 image in, faces out) beside the raw ones, at these scales
    end2end: bool = False
    ms_test: bool = False  # the paper's three test scales in one graph, else e2e_imgsz
    e2e_imgsz: tuple[int, int] = (640, 860)  # acfd-detect's default single scale
    keep_ratio: bool = False
    pt2: bool = False  # an AOTInductor package (.pt2) for the export device
    calib: Path | None = None  # None: the calibration images bundled with the package
    imgsz: tuple[int, int] = DEFAULT_IMGSZ
    batch: int = 1
    opset: int = 17
    simplify: bool = True
    engine: str = "auto"
    workspace: float = 4.0
    device: str = "auto"  # where TensorRT builds and runs (cuda:N); ONNX Runtime parity runs on the CPU
    out: Path = DEFAULT_OUT
    triton_repo: Path | None = None  # also write a model repository for the stock Triton server
    triton_precision: str = "fp32"  # which verified artifact goes into it
    k8s_dir: Path | None = None  # also Kubernetes manifests for the repository (needs triton_repo)
    k8s_image: str | None = None  # the tritonserver image they name (None: the release acfd-deploy was checked with)
    k8s_gpus: int | None = None  # nvidia.com/gpu per pod (None: 1 for a TensorRT plan, else 0)
    seed: int = 0
    parity_images: int = 4
    calib_limit: int | None = None
    strict: bool = False  # an unverified artifact fails the export
    # int8 is judged by AP50 on a labelled set: the user's (iCartoonFace format) or synthetic
    val_data: Path | None = None
    val_images: Path | None = None
    val_count: int = DEFAULT_VAL_IMAGES


def validate(opts: ExportOptions) -> None:
    """Refuse contradictory or out-of-range options before anything is read or written."""
    if opts.engine not in ENGINES:
        raise AcfdError(f"unknown --engine {opts.engine!r}; choose from {', '.join(ENGINES)}")
    if opts.batch < 1:
        raise AcfdError(f"--batch must be at least 1, got {opts.batch}")
    if opts.workspace <= 0:
        raise AcfdError(f"--workspace must be positive (GiB), got {opts.workspace}")
    if (opts.val_data is None) != (opts.val_images is None):
        raise AcfdError("--val-data and --val-images go together (the CSV and the folder of its images)")
    if opts.val_data is not None and not opts.int8:
        raise AcfdError("--val-data and --val-images judge the --int8 artifact by AP; add --int8 or leave them out")
    if opts.val_count < 1:
        raise AcfdError(f"--val-count must be at least 1, got {opts.val_count}")
    if not 13 <= opts.opset <= 23:
        raise AcfdError(f"--opset {opts.opset} is not supported (13..23; default 17)")
    if (opts.ms_test or opts.keep_ratio or tuple(opts.e2e_imgsz) != (640, 860)) and not opts.end2end:
        raise AcfdError("--ms-test, --keep-ratio and --e2e-imgsz choose the end-to-end graph's scales; add --end2end or leave them out")
    if opts.end2end and opts.ms_test and tuple(opts.e2e_imgsz) != (640, 860):
        raise AcfdError("--ms-test and --e2e-imgsz exclude each other (the multi-scale test has its own three scales)")
    if min(opts.e2e_imgsz) < 1:
        raise AcfdError(f"--e2e-imgsz must be positive, got {opts.e2e_imgsz[0]} {opts.e2e_imgsz[1]}")
    if opts.random_init and opts.weights is not None:
        raise AcfdError("--random-init and --model/--weights exclude each other")
    if opts.random_init and not opts.config:
        raise AcfdError("--random-init needs --config NAME")
    device = parse_device(opts.device)
    if device.is_cuda and cuda_status("tensorrt").usable:
        resolve_device(device, backend="tensorrt")  # a GPU asked for by name must exist
    if opts.engine == "tensorrt" and device.kind == "cpu":
        raise AcfdError("--engine tensorrt builds TensorRT engines on a GPU; --device cpu contradicts it")
    if opts.triton_repo is not None:
        _validate_triton(opts)
    if opts.k8s_dir is not None:
        _validate_k8s(opts)
    if opts.openvino:
        import importlib.util

        from acfd_deploy.runtime.openvino_model import install_hint

        if importlib.util.find_spec("openvino") is None:
            raise AcfdError(f"--openvino needs OpenVINO: {install_hint()}")
    if opts.pt2:
        _validate_pt2()
    if opts.engine == "tensorrt":
        answer = cuda_status("tensorrt")
        if not answer.usable:
            raise AcfdError(f"--engine tensorrt needs TensorRT and a CUDA GPU: {answer.reason}")


def _validate_triton(opts: ExportOptions) -> None:
    """The Triton repository is checked before the (long) export, not after it."""
    from acfd_deploy.staging import check_target

    assert opts.triton_repo is not None
    if Path(opts.triton_repo).absolute() == Path(opts.out).absolute():
        raise AcfdError("--triton-repo must be another folder than --out")
    asked = {"fp32": True, "fp16": opts.fp16, "int8": opts.int8}
    if opts.triton_precision not in asked:
        raise AcfdError(f"--triton-precision must be fp32, fp16 or int8, got {opts.triton_precision!r}")
    if not asked[opts.triton_precision]:
        raise AcfdError(f"--triton-precision {opts.triton_precision} needs --{opts.triton_precision} (or it is not exported)")
    check_repository_dir(opts.triton_repo)
    check_target(Path(opts.triton_repo), "acfd-repository.json", "Triton model repository")


def _validate_k8s(opts: ExportOptions) -> None:
    """The manifests describe the Triton repository, so they need one, in another folder."""
    from acfd_deploy.k8s.render import MARKER
    from acfd_deploy.staging import check_target

    assert opts.k8s_dir is not None
    if opts.triton_repo is None:
        raise AcfdError("--k8s writes manifests for the Triton model repository: add --triton-repo DIR")
    k8s = Path(opts.k8s_dir).absolute()
    if k8s == Path(opts.triton_repo).absolute() or Path(opts.triton_repo).absolute() in k8s.parents:
        # Triton takes every folder of a repository for a model, and refuses to start on one that is not
        raise AcfdError("--k8s DIR must be outside --triton-repo (Triton would take it for a model)")
    if k8s == Path(opts.out).absolute():
        raise AcfdError("--k8s DIR must be another folder than --out")
    if opts.k8s_gpus is not None and opts.k8s_gpus < 0:
        raise AcfdError(f"--k8s-gpus must not be negative, got {opts.k8s_gpus}")
    check_target(k8s, MARKER, "Kubernetes manifest folder")


def _validate_pt2() -> None:
    """AOTInductor compiles C++: without a compiler the export would fail minutes in."""
    import os
    import shutil

    compiler = os.environ.get("CXX") or "g++"
    if shutil.which(compiler) is None and shutil.which("c++") is None:
        raise AcfdError(
            f"--pt2 compiles C++ with AOTInductor and needs a C++ compiler ({compiler} not found): "
            "apt-get install g++ (or set CXX), or leave out --pt2"
        )

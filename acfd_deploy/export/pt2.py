"""The folded graph as an AOTInductor package (``.pt2``): ``torch.export`` with dynamic
batch, height and width, compiled ahead of time by AOTInductor for one device (C++ on the
CPU, CUDA kernels on a GPU), with acfd metadata added to the archive.

The input ranges are what torch.export proves for this network, not a guess: exporting
with both sides in 125..MAX (the six-level minimum) with named ``Dim`` s makes torch.export
report every guard the traced graph relies on that does not hold over the whole range:

* the coarsest pyramid level must not be 1 pixel (torch.export specializes sizes 0 and 1,
  and a 1x1 map is ambiguous between memory formats in the convolution's shape rules): a
  real restriction, 253 px per side for six levels (:func:`export_min_side`);
* with the backbone's ceil-mode max-pool as such, also its window check
  ``2 * ((n - 1) // 2) < n`` (true for every n, beyond the solver), and, worse, Inductor's
  ceil-mode lowering picks its size formula from the traced size: a package traced at
  320x384 returned 2 anchors too few at 289x357. While exporting, the backbone writes the
  pool as floor mode over one pixel of -inf end padding (the same function:
  ``acfd_deploy.model.backbone.downsample``), and neither appears.

The dims are declared ``Dim.DYNAMIC(min, max)`` and, after export, the ranges torch.export
recorded are compared with the declared ones, so a network change that narrows them fails
the export instead of shipping a package that refuses sizes it claims to take. Inputs
below 253 px are padded up by the pipeline, as it pads any input below a runner's
``min_size``; the runner also checks each output's anchor count against the arithmetic.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from acfd_deploy.configs import ModelConfig
from acfd_deploy.errors import AcfdError
from acfd_deploy.model.anchors import feature_sizes

MAX_SIDE = 4096
MAX_BATCH = 64
TRACE_BATCH = 2  # torch.export specializes a dimension traced at 1
# the default settings, measured on the demo model (benchmarks/results/pt2_cpu.md):
# dynamic_threads lets one package use the threads of the machine it runs on (OMP_NUM_THREADS)
# instead of the count of the machine that compiled it
DEFAULT_INDUCTOR_CONFIGS: dict[str, Any] = {"cpp.dynamic_threads": True}


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Keep torch's own chatter out of the export's output: the shape solver logs a
    traceback per floor-division guard it cannot simplify, and pytree warns about its own
    deprecations."""
    logger = logging.getLogger("torch.fx.experimental.symbolic_shapes")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", UserWarning)
            yield
    finally:
        logger.setLevel(level)


def export_min_side(config: ModelConfig) -> int:
    """The smallest side for which every pyramid level is at least 2 px: what a
    torch.export graph of the network takes (it cannot take a 1-px coarsest level)."""
    n = 1
    while min(min(s) for s in feature_sizes(n, n, config)) < 2:
        n += 1
    return n


def trace_size(config: ModelConfig, avoid: Sequence[tuple[int, int]]) -> tuple[int, int]:
    """An example size to trace at: above the export minimum, not square, and none of the
    ``avoid`` sizes (the parity sizes), so that verification runs the package only at
    sizes it was not traced at."""
    lo = export_min_side(config)
    h, w = lo + 67, lo + 131  # 320 x 384 for six levels
    while (h, w) in set(map(tuple, avoid)):
        h, w = h + 1, w + 3
    return h, w


class HalfPrecision(nn.Module):
    """The network in fp16 behind fp32 inputs and outputs: anchors, box decoding and the
    sigmoid stay fp32 (the detector decodes in fp32 for a half-precision network), as in
    the fp16 ONNX."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = copy.deepcopy(model).half()

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        boxes, scores = self.model(images.half())
        return boxes.float(), scores.float()


def _cpu_isa() -> tuple[str, list[str]]:
    """The instruction set AOTInductor compiles CPU kernels for here, and the
    /proc/cpuinfo flags it needs (from its compiler flags: ``-mavx512vnni`` -> ``avx512_vnni``)."""
    from torch._inductor import cpu_vec_isa

    isa = cpu_vec_isa.pick_vec_isa()
    rename = {"avx512vnni": "avx512_vnni", "avx512bf16": "avx512_bf16", "avx512fp16": "avx512_fp16"}
    flags = set()
    for flag in str(isa.build_arch_flags()).split():
        if flag.startswith("-m") and not flag.startswith("-march"):
            name = flag[2:].replace("-", "_")
            flags.add(rename.get(name, name))
    return str(isa) or "scalar", sorted(flags)


def export_program(
    model: nn.Module, config: ModelConfig, device: torch.device, precision: str, trace_hw: tuple[int, int], max_batch: int
) -> tuple[torch.export.ExportedProgram, dict[str, list[int]]]:
    """``torch.export`` of ``model`` (eval mode, on ``device``, fp32 or fp16 inside) with
    dynamic batch, height and width; the ranges are checked against what torch.export
    recorded."""
    from torch.export import Dim

    lo = export_min_side(config)
    net = model if precision == "fp32" else HalfPrecision(model)
    net = copy.deepcopy(net).eval().to(device)
    declared = {"batch": [1, max_batch], "height": [lo, MAX_SIDE], "width": [lo, MAX_SIDE]}
    dims = {0: Dim.DYNAMIC(min=1, max=max_batch), 2: Dim.DYNAMIC(min=lo, max=MAX_SIDE), 3: Dim.DYNAMIC(min=lo, max=MAX_SIDE)}
    example = torch.rand(TRACE_BATCH, 3, *trace_hw, device=device) * 255
    with torch.no_grad(), _quiet():
        program = torch.export.export(net, (example,), dynamic_shapes={"images": dims})
    _check_ranges(program, example, declared)
    return program, declared


def _check_ranges(program: torch.export.ExportedProgram, example: torch.Tensor, declared: dict[str, list[int]]) -> None:
    """The range torch.export recorded for each input dimension must be the declared one
    (the batch lower bound excepted: torch.export records 2 for any dynamic size, its
    0/1 assumption, and AOTInductor takes 1 where ``check_lowerbound`` is off)."""
    node = next(n for n in program.graph.nodes if n.op == "placeholder" and n.name == "images")
    shape = node.meta["val"].shape
    got = {}
    for axis, index in (("batch", 0), ("height", 2), ("width", 3)):
        expr = shape[index].node.expr
        vr = program.range_constraints.get(expr)
        if vr is None:
            raise AcfdError(f"torch.export made the {axis} static ({shape[index]}); the package would take one size only")
        got[axis] = [int(vr.lower), int(vr.upper)]
    want = {k: list(v) for k, v in declared.items()}
    want["batch"][0] = max(2, want["batch"][0])
    if got != want:
        raise AcfdError(f"torch.export narrowed the input ranges to {got} (declared {declared}); the network changed: see docs/export.md")


def compile_package(
    program: torch.export.ExportedProgram, target: Path, metadata: dict[str, Any], inductor_configs: dict[str, Any] | None = None
) -> tuple[float, dict[str, Any]]:
    """AOTInductor compile of ``program`` into ``target`` with ``metadata`` added;
    the seconds it took and the configs it used."""
    from acfd_deploy.runtime.pt2_package import add_metadata

    configs = {**DEFAULT_INDUCTOR_CONFIGS, **(inductor_configs or {})}
    configs["aot_inductor.check_lowerbound"] = False  # batch 1 is in range (see _check_ranges)
    buffer = io.BytesIO()
    t0 = time.perf_counter()
    try:
        with _quiet():
            torch._inductor.aoti_compile_and_package(program, package_path=buffer, inductor_configs=dict(configs))
    except Exception as exc:  # a missing compiler is the usual cause: say so in one line
        from acfd_deploy.errors import one_line

        raise AcfdError(f"AOTInductor could not compile the package ({one_line(exc, 200)}); it needs a C++ compiler (g++)") from None
    seconds = time.perf_counter() - t0
    isa, flags = _cpu_isa() if metadata.get("device") == "cpu" else ("", [])
    add_metadata(buffer.getvalue(), target, {**metadata, "cpu_isa": isa, "cpu_flags": flags, "inductor_configs": configs})
    return seconds, configs


def cuda_info(device: torch.device) -> dict[str, str]:
    """The GPU a CUDA package is compiled on (a record; the runtime checks device kind and torch)."""
    if device.type != "cuda":
        return {}
    major, minor = torch.cuda.get_device_capability(device)
    return {"gpu": torch.cuda.get_device_name(device), "compute_capability": f"{major}.{minor}"}

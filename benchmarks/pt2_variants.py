"""Compile one AOTInductor package per inductor setting from the same folded graph, for
acfd-bench to time side by side (benchmarks/bench_pt2_cpu.sh):

    python benchmarks/pt2_variants.py OUT_DIR [--model X.pth] [--variant NAME=JSON ...]

Each package gets the metadata acfd-export writes (so the runner takes it) and its
compile time is printed and written to OUT_DIR/variants.json. Variants are named by the
settings they add to acfd's defaults (acfd_deploy.export.pt2.DEFAULT_INDUCTOR_CONFIGS).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import acfd_deploy
from acfd_deploy.export.pt2 import DEFAULT_INDUCTOR_CONFIGS, compile_package, export_program, trace_size
from acfd_deploy.fileio import atomic_path, sha256_file
from acfd_deploy.resources import demo_weights

VARIANTS = {
    "default": {},  # acfd's defaults: cpp.dynamic_threads
    "static-threads": {"cpp.dynamic_threads": False},  # inductor's own default: the compiling machine's thread count
    "freezing": {"freezing": True},  # weights folded as constants, oneDNN weight prepacking
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path)
    p.add_argument("--model", type=Path, default=None, help="checkpoint (default: the bundled demo model)")
    p.add_argument("--variant", action="append", default=[], metavar="NAME[=JSON]", help="a variant of VARIANTS, or NAME=JSON settings")
    args = p.parse_args()
    chosen = {}
    for spec in args.variant or list(VARIANTS):
        name, _, settings = spec.partition("=")
        chosen[name] = json.loads(settings) if settings else VARIANTS[name]
    weights = args.model or demo_weights()
    folded = acfd_deploy.reparameterize(acfd_deploy.load_model(weights))
    config = folded.config
    args.out.mkdir(parents=True, exist_ok=True)
    record = {}
    for name, settings in chosen.items():
        t0 = time.perf_counter()
        program, ranges = export_program(folded, config, torch.device("cpu"), "fp32", trace_size(config, [(640, 640)]), 64)
        export_s = time.perf_counter() - t0
        meta = {
            "precision": "fp32",
            "device": "cpu",
            "torch_version": torch.__version__,
            "config_name": config.name,
            "config": config.to_dict(),
            "weights": str(weights),
            "weights_sha256": sha256_file(weights),
            "input": {"min_side": ranges["height"][0], "ranges": ranges},
            "variant": name,
        }
        path = args.out / f"{config.name}.{name}.pt2"
        compile_s, configs = compile_package(program, path, meta, settings)
        record[name] = {"path": path.name, "export_seconds": round(export_s, 1), "compile_seconds": round(compile_s, 1), "configs": configs}
        print(f"{name}: torch.export {export_s:.1f} s, AOTInductor compile {compile_s:.1f} s -> {path}", flush=True)
    with atomic_path(args.out / "variants.json") as tmp:
        tmp.write_text(json.dumps({"defaults": DEFAULT_INDUCTOR_CONFIGS, "variants": record}, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""Model cards: what a config costs, measured on the graph, written as Markdown.

python -m acfd_deploy.card acfd-vovnetv3-51 --out models/acfd-vovnetv3-51.md
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from acfd_deploy.configs import ModelConfig, resolve_config
from acfd_deploy.cost import count_flops, count_params, state_dict_mb
from acfd_deploy.fileio import atomic_path
from acfd_deploy.model.anchors import feature_sizes, min_input_size, num_anchors
from acfd_deploy.model.detector import build_model
from acfd_deploy.reparam import reparameterize

TEST_SCALES = ((480, 645), (640, 860), (800, 1075))
SIZES = ((640, 640), *TEST_SCALES)


def cost_table(config: ModelConfig) -> list[dict[str, object]]:
    torch.manual_seed(0)
    train = build_model(config).eval()
    folded = reparameterize(train)
    rows = []
    for name, model in (("training graph", train), ("folded graph", folded)):
        flops = {f"{h}x{w}": count_flops(model, h, w) for h, w in SIZES}
        rows.append(
            {
                "graph": name,
                "params": count_params(model),
                "size_mb": state_dict_mb(model),
                "gflops": flops,
                "gflops_ms_test": sum(flops[f"{h}x{w}"] for h, w in TEST_SCALES),
            }
        )
    return rows


def render_card(config: ModelConfig) -> str:
    rows = cost_table(config)
    size_cols = [f"{h}x{w}" for h, w in SIZES]
    stages = ", ".join(f"{s.conv_channels}/{s.concat_channels} x{s.blocks}" for s in config.stages)
    lines = [
        f"# {config.name}",
        "",
        config.notes,
        "",
        "## Architecture",
        "",
        f"- Stem: 3x3 conv+BN+ReLU, channels {config.stem[0]} (s2), {config.stem[1]}, {config.stem[2]} (s2).",
        f"- VoVNetV3 stages (conv/concat channels x blocks): {stages}; {config.layers_per_block} ACBs per AOSA block, "
        "eSE, identity residual from the second block of a stage, MaxPool(3, 2, ceil_mode=True) before stages 2 onwards.",
        f"- ABi-FPN: width {config.fpn_channels}, {config.fpn_repeats} repeats of top-down + bottom-up with fast normalized fusion; "
        "every 3x3 conv is an ACB. (The paper gives neither width nor repeats; this is our choice.)",
        f"- Head: {config.head_layers} ACB layers shared across levels with BatchNorm per level, then 3x3 convs to 1 logit and 4 deltas.",
        f"- Anchors: one square per location, side {config.anchor_scale:g} x stride, strides {', '.join(map(str, config.strides))} "
        f"(sides {int(config.anchor_scale * config.strides[0])}..{int(config.anchor_scale * config.strides[-1])} px); "
        f"SSD box coding with variances {config.variances}.",
        f"- Input: float32 RGB 0..255, NCHW, any size with both sides >= {min_input_size(config)} (smaller inputs leave the "
        "coarsest level empty); normalization happens in the graph.",
        "",
        "## Cost",
        "",
        "GFLOPs count 2 per multiply-accumulate of every convolution, batch 1. Size is `torch.save(state_dict)` in fp32.",
        "",
        "| graph | parameters | size (MB) | " + " | ".join(f"GFLOPs {c}" for c in size_cols) + " | GFLOPs, 3 test scales |",
        "|---|---:|---:|" + "---:|" * len(size_cols) + "---:|",
    ]
    for r in rows:
        flops = r["gflops"]
        assert isinstance(flops, dict)
        lines.append(
            f"| {r['graph']} | {r['params']:,} | {r['size_mb']:.1f} | "
            + " | ".join(f"{flops[c]:.1f}" for c in size_cols)
            + f" | {r['gflops_ms_test']:.1f} |"
        )
    lines += ["", "## Anchors per input size", "", "| input | anchors | level sizes (H x W) |", "|---|---:|---|"]
    for h, w in SIZES:
        levels = ", ".join(f"{a}x{b}" for a, b in feature_sizes(h, w, config))
        lines.append(f"| {h}x{w} | {num_anchors(h, w, config):,} | {levels} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write a model card with measured cost.")
    parser.add_argument("config")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    text = render_card(resolve_config(args.config))
    if args.out:
        with atomic_path(args.out) as tmp:
            tmp.write_text(text)
    else:
        print(text, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

from __future__ import annotations

import acfd_deploy
from acfd_deploy.card import render_card
from acfd_deploy.cost import count_flops, count_params


def test_card_reports_measured_cost() -> None:
    cfg = acfd_deploy.get_config("acfd-tiny")
    text = render_card(cfg)
    model = acfd_deploy.build_model(cfg)
    folded = acfd_deploy.reparameterize(model)
    assert f"| training graph | {count_params(model):,} |" in text
    assert f"| folded graph | {count_params(folded):,} |" in text
    assert "| 640x640 | 34,125 |" in text and "| 480x645 | 25,885 |" in text
    # folding removes the 1x3 / 3x1 branches: 9 instead of 15 taps per ACB output
    assert count_flops(folded, 256, 320) < 0.75 * count_flops(model, 256, 320)

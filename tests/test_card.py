"""The model card and the cost counters it is made of. Expected values are worked out by
hand (a convolution's weights and multiply-accumulates) or are the acfd-tiny figures that
models/acfd-tiny.md publishes, never recomputed with the function under test."""

from __future__ import annotations

import pytest
from torch import nn

import acfd_deploy
from acfd_deploy.card import render_card
from acfd_deploy.cost import count_flops, count_params
from acfd_deploy.model.layers import ACB


def test_params_and_flops_of_a_convolution_by_hand() -> None:
    conv = nn.Conv2d(3, 8, 3, padding=1)
    assert count_params(conv) == 3 * 8 * 3 * 3 + 8
    assert count_params(nn.Sequential(nn.Conv2d(3, 8, 3, bias=False), nn.BatchNorm2d(8))) == 3 * 8 * 9 + 2 * 8
    # 2 FLOPs per multiply-accumulate: in_channels * kernel taps per output value
    assert count_flops(conv, 10, 12) == pytest.approx(2 * 3 * 9 * 8 * 10 * 12 / 1e9)
    strided = nn.Conv2d(3, 8, 3, stride=2, padding=1)
    assert count_flops(strided, 10, 12) == pytest.approx(2 * 3 * 9 * 8 * 5 * 6 / 1e9)


def test_folding_an_acb_keeps_9_of_its_15_taps() -> None:
    """3x3 + 1x3 + 3x1 branches (15 taps per output) become one 3x3 conv (9 taps)."""
    block = ACB(3, 6)  # count_flops feeds an RGB image
    folded = acfd_deploy.reparameterize(block)
    assert count_flops(folded, 9, 11) / count_flops(block, 9, 11) == pytest.approx(9 / 15)
    assert count_params(folded) == 3 * 6 * 9 + 6  # one conv with its bias, no BatchNorm left


def test_card_reports_the_tiny_config_cost() -> None:
    text = render_card(acfd_deploy.get_config("acfd-tiny"))
    assert "| training graph | 886,549 | 4.1 |" in text
    assert "| folded graph | 657,753 | 2.7 |" in text
    assert "| 640x640 | 34,125 |" in text and "| 480x645 | 25,885 |" in text

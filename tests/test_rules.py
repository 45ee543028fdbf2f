"""The rule chain (acfd_deploy.verify.rules) as pure functions on made-up evidence: which
rule judges which artifact, at which tolerance, and that no rule passes on zero evidence
(docs/design.md#verification-and-tolerances)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from acfd_deploy.export.report import format_table, summary_lines
from acfd_deploy.runtime.base import Runner
from acfd_deploy.runtime.registry import backend_named, backends
from acfd_deploy.verify.compare import DetectionMatch, TensorDiff
from acfd_deploy.verify.rules import (
    FP16_MIN_MATCH,
    FP32_TOL,
    INT8_MIN_MATCH,
    MAX_AP_DROP,
    MIN_REFERENCE_AP,
    REDUCED_SCORE_TOL,
    ApRule,
    DetectionRule,
    Evidence,
    Status,
    judge,
    needs_ap,
    rules_for,
)
from acfd_deploy.verify.verifier import Verifier


def _match(reference: int, matched: int) -> DetectionMatch:
    return DetectionMatch(reference, matched, matched, 0.97 if reference else float("nan"), 0.01 if reference else float("nan"))


def _evidence(
    score: float = 0.0,
    box: float = 0.0,
    anchors: int = 1000,
    reference: int = 0,
    matched: int = 0,
    reference_ap: float | None = None,
    ap: float | None = None,
) -> Evidence:
    return Evidence(TensorDiff(score, box, anchors), _match(reference, matched), reference_ap, ap)


TENSORRT_FP32_TOL = 1e-3  # docs/design.md#verification-and-tolerances


def test_the_tolerances_are_the_documented_ones() -> None:
    assert FP32_TOL == 1e-4 and backend_named("tensorrt").fp32_tolerance == TENSORRT_FP32_TOL
    # only a backend that picks its own fp32 kernels sets one; the others get FP32_TOL
    assert {b.name for b in backends() if b.fp32_tolerance is not None} == {"tensorrt"}
    assert FP16_MIN_MATCH == 0.99 and INT8_MIN_MATCH == 0.95
    assert REDUCED_SCORE_TOL == 0.02 and MAX_AP_DROP == 0.01 and MIN_REFERENCE_AP == 0.1


# ---------------------------------------------------------------- fp32: tensor level


def test_fp32_tensor_rule_passes_at_its_bound_and_fails_above() -> None:
    ok = judge(_evidence(score=FP32_TOL, box=FP32_TOL), "fp32")
    assert (ok.rule, ok.status, ok.passed, ok.reason) == ("tensor", Status.PASS, True, "")
    assert ok.required == {"score_abs": FP32_TOL, "box_rel": FP32_TOL}
    for score, box in ((2e-4, 0.0), (0.0, 2e-4), (float("inf"), float("inf"))):
        bad = judge(_evidence(score=score, box=box), "fp32")
        assert (bad.rule, bad.status, bad.passed) == ("tensor", Status.FAIL, False), (score, box)


def test_tensorrt_fp32_is_held_to_1e_3() -> None:
    between = _evidence(score=5e-4, box=5e-4)  # fails 1e-4, passes 1e-3
    assert judge(between, "fp32", "onnxruntime").passed is False
    trt = judge(between, "fp32", "tensorrt")
    assert trt.passed is True and trt.required == {"score_abs": TENSORRT_FP32_TOL, "box_rel": TENSORRT_FP32_TOL}
    assert judge(_evidence(score=2e-3), "fp32", "tensorrt").passed is False


def test_a_backend_record_sets_its_own_fp32_tolerance(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tolerance comes from the registry record, not from the backend's name."""
    from acfd_deploy.runtime import registry

    between = _evidence(score=5e-4, box=5e-4)
    assert judge(between, "fp32", "openvino").passed is False
    monkeypatch.setitem(registry._BACKENDS, "openvino", replace(backend_named("openvino"), fp32_tolerance=1e-3))
    assert judge(between, "fp32", "openvino").passed is True


def test_fp32_with_nothing_compared_is_unverified() -> None:
    verdict = judge(_evidence(anchors=0), "fp32")
    assert verdict.status is Status.UNVERIFIED and verdict.passed is None and verdict.rule == "none"
    assert "no outputs were compared" in verdict.reason


# ---------------------------------------------------------------- fp16: detections, then scores


def test_detection_rule_needs_enough_detections_to_resolve_its_rate() -> None:
    assert DetectionRule(0.99).min_reference == 100
    assert DetectionRule(0.95).min_reference == 20
    assert DetectionRule(0.9).min_reference == 10


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_fp16_with_enough_detections_uses_the_detection_rule(precision: str) -> None:
    ok = judge(_evidence(score=0.5, reference=100, matched=99), precision)  # a large score error elsewhere does not matter
    assert (ok.rule, ok.passed, ok.reason) == ("detection", True, "")
    assert ok.required["match_rate"] == FP16_MIN_MATCH
    bad = judge(_evidence(score=0.0, reference=100, matched=98), precision)  # all scores equal does not rescue a lost detection
    assert (bad.rule, bad.passed) == ("detection", False)


def test_fp16_with_few_detections_falls_back_to_scores_and_says_why() -> None:
    ok = judge(_evidence(score=REDUCED_SCORE_TOL, box=0.5, reference=99, matched=99), "fp16")
    assert (ok.rule, ok.status, ok.passed) == ("scores", Status.PASS, True)
    assert ok.required == {"score_abs": REDUCED_SCORE_TOL}
    assert "detection rule: 99 reference detection(s)" in ok.reason and "fewer than the 100 a 99% match rate needs" in ok.reason
    bad = judge(_evidence(score=0.021, reference=5, matched=5), "fp16")  # 5 of 5 matched is no evidence of 99%
    assert (bad.rule, bad.passed) == ("scores", False) and "5 reference detection(s)" in bad.reason


def test_fp16_with_no_outputs_is_unverified_naming_both_rules() -> None:
    verdict = judge(_evidence(anchors=0), "fp16")
    assert verdict.passed is None and verdict.status is Status.UNVERIFIED
    assert "detection rule:" in verdict.reason and "scores rule: no outputs were compared" in verdict.reason


# ---------------------------------------------------------------- int8: AP, then detections


def test_int8_with_a_detecting_reference_is_judged_by_ap_at_its_boundary() -> None:
    ok = judge(_evidence(reference=500, matched=100, reference_ap=0.80, ap=0.79), "int8")  # 20% matched: AP still decides
    assert (ok.rule, ok.passed) == ("ap", True) and ok.evidence.ap_drop == pytest.approx(0.01)
    assert ok.required == {"max_ap_drop": MAX_AP_DROP}
    lost = judge(_evidence(reference=500, matched=500, reference_ap=0.80, ap=0.785), "int8")
    assert (lost.rule, lost.passed) == ("ap", False)  # a perfect match rate does not rescue a lost AP
    gain = judge(_evidence(reference=500, matched=0, reference_ap=0.5, ap=0.7), "int8")
    assert (gain.rule, gain.passed) == ("ap", True)  # a gain is no failure
    edge = judge(_evidence(reference_ap=MIN_REFERENCE_AP, ap=MIN_REFERENCE_AP - 0.02), "int8")
    assert (edge.rule, edge.passed) == ("ap", False)  # at exactly the floor AP judges


def test_int8_ap_rule_needs_the_artifacts_ap() -> None:
    with pytest.raises(ValueError, match="needs the artifact's AP"):
        judge(_evidence(reference=500, matched=500, reference_ap=0.8, ap=None), "int8")


def test_int8_with_a_low_reference_ap_falls_to_the_detection_rule() -> None:
    low = MIN_REFERENCE_AP - 0.01
    ok = judge(_evidence(reference=20, matched=19, reference_ap=low, ap=None), "int8")
    assert (ok.rule, ok.passed) == ("detection", True) and ok.required["match_rate"] == INT8_MIN_MATCH
    assert "ap rule:" in ok.reason and "do not detect enough" in ok.reason
    bad = judge(_evidence(reference=20, matched=18, reference_ap=low, ap=None), "int8")
    assert (bad.rule, bad.passed) == ("detection", False)
    # without any labelled set the detection rule decides too, and says so
    no_set = judge(_evidence(reference=40, matched=40), "int8")
    assert no_set.rule == "detection" and no_set.passed is True and "no labelled validation set" in no_set.reason


@pytest.mark.parametrize("reference_ap", [None, 0.0])
def test_int8_with_zero_detections_and_no_ap_is_unverified_never_passed(reference_ap: float | None) -> None:
    verdict = judge(_evidence(reference=0, matched=0, reference_ap=reference_ap), "int8")
    assert verdict.status is Status.UNVERIFIED and verdict.status.value == "n/a"
    assert verdict.passed is None and verdict.rule == "none" and verdict.required == {}
    assert "ap rule:" in verdict.reason and "detection rule: 0 reference detection(s)" in verdict.reason
    record = verdict.to_dict()
    assert record["status"] == "n/a" and record["passed"] is None and record["match"]["rate"] is None
    assert json.loads(json.dumps(record))["passed"] is None  # null in export.json, not false, not true


def test_the_chain_per_precision() -> None:
    assert [r.name for r in rules_for("fp32")] == ["tensor"]
    assert [r.name for r in rules_for("fp16")] == [r.name for r in rules_for("bf16")] == ["detection", "scores"]
    assert [r.name for r in rules_for("int8")] == ["ap", "detection"]
    assert needs_ap("int8") and not needs_ap("fp16") and not needs_ap("fp32")
    assert ApRule().can_judge(0.1) and not ApRule().can_judge(0.099) and not ApRule().can_judge(None)
    with pytest.raises(ValueError, match="no verification rule"):
        rules_for("fp8")


# ---------------------------------------------------------------- how verdicts read in the table


def _entry(name: str, precision: str, verdict: dict) -> dict:
    return {"name": name, "kind": "onnx", "path": f"m.{precision}.onnx", "precision": precision, "size": 2048, "verdict": verdict}


def test_table_says_n_a_and_never_a_rate_of_nothing() -> None:
    unverified = judge(_evidence(reference=0), "int8").to_dict()
    passed = judge(_evidence(reference=200, matched=199), "fp16").to_dict()
    table = format_table([_entry("ONNX int8", "int8", unverified), _entry("ONNX fp16", "fp16", passed)])
    int8_row = next(line for line in table.splitlines() if line.startswith("ONNX int8"))
    fp16_row = next(line for line in table.splitlines() if line.startswith("ONNX fp16"))
    assert int8_row.endswith("n/a") and "none to match" in int8_row and "PASS" not in int8_row
    assert "% of 0" not in table
    assert fp16_row.endswith("PASS") and "99.50% of 200" in fp16_row and "match>=99%" in fp16_row
    manifest = {
        "parity_images": {"batches": [[2, 3, 160, 192]], "source": "synthetic", "reference": "PyTorch training graph"},
        "weights": {},
        "artifacts": [_entry("ONNX int8", "int8", unverified)],
        "notes": {"tensorrt": "TensorRT: skipped (--engine onnx)"},
    }
    lines = summary_lines(manifest)
    assert any(line.startswith("ONNX int8: n/a, not verified (ap rule:") for line in lines), lines


class _Outputs(Runner):
    """A runner returning fixed outputs for any input (boxes ``[B, n, 4]``, scores ``[B, n]``)."""

    def __init__(self, anchors: int) -> None:
        self.name, self.precision, self.anchors = f"fixed-{anchors}", "fp32", anchors

    def infer(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        b = len(images)
        boxes = np.tile(np.array([10.0, 10.0, 50.0, 60.0], np.float32), (b, self.anchors, 1))
        return boxes, np.full((b, self.anchors), 0.5, np.float32)


def test_outputs_of_another_shape_fail_the_artifact_not_the_command() -> None:
    """A package that computes two anchors too few is a failed artifact (exit 1 in the
    table), not an internal error of the verifier."""
    inputs = [np.zeros((2, 3, 130, 140), np.float32)]
    verifier = Verifier(_Outputs(40), inputs)
    same = verifier.verify(_Outputs(40))
    short = verifier.verify(_Outputs(38))
    assert same.status is Status.PASS
    assert short.status is Status.FAIL and short.passed is False and "output shapes differ" in short.reason

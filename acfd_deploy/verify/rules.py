"""Which rule judges an artifact, with which tolerance, and what the verdict says.

One table (:func:`rules_for`) maps an artifact's precision (and backend, where a backend
computes differently) to an ordered chain of rules. The first rule that has evidence to
judge decides; a rule without evidence says why and hands over to the next. When no rule
can judge, the verdict is **unverified** (``n/a``, ``passed`` None) with the reasons:
a rule never passes on zero evidence (docs/design.md#verification-and-tolerances).

* fp32 (folded graph, ONNX Runtime, OpenVINO): tensor level, scores within 1e-4 absolute
  and boxes within 1e-4 relative to the box's size. TensorRT fp32 picks its own kernels
  (TF32 off): 1e-3 until measured on a GPU.
* fp16 and bf16: 99% of the reference detections found again at the same anchor (IoU >=
  0.9, |score diff| <= 0.02); with too few detections to resolve 99%, every anchor's score
  within 0.02 (the tensor-level rule that applies to reduced precision).
* int8: AP50 on a labelled set within 1 point of the reference's; where the reference
  does not detect enough for AP to mean anything, 95% of its detections found again;
  no tensor rule applies (quantization moves every score by a few hundredths).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import Any, Protocol

from acfd_deploy.runtime.registry import backends
from acfd_deploy.verify.compare import DET_IOU, DET_SCORE_DIFF, DET_SCORE_THRESHOLD, DetectionMatch, TensorDiff

FP32_TOL = 1e-4  # a backend with its own fp32 kernels sets its tolerance on its registry record
FP16_MIN_MATCH = 0.99
INT8_MIN_MATCH = 0.95
REDUCED_SCORE_TOL = 0.02
MAX_AP_DROP = 0.01
MIN_REFERENCE_AP = 0.1


class Status(str, enum.Enum):
    """One artifact's verdict, in the words every table and file uses."""

    PASS = "pass"
    FAIL = "fail"
    UNVERIFIED = "n/a"

    @classmethod
    def of(cls, passed: bool | None) -> Status:
        """The status of a recorded ``passed`` (True, False, or None for unverified)."""
        return cls.UNVERIFIED if passed is None else cls.PASS if passed else cls.FAIL


class Outcome(str, enum.Enum):
    """What a set of verdicts adds up to (an export's ``status``; what acfd-serve reads
    of an artifact in its ``export.json``)."""

    PASSED = "passed"
    FAILED = "failed"
    UNVERIFIED = "unverified"


def overall(verdicts: list[bool | None]) -> tuple[str, bool | None]:
    """``(status, passed)``: failed if any failed, unverified if any could not be judged
    (or there is nothing to judge), else passed. ``passed`` is None when unverified,
    never True: nothing passes on zero evidence."""
    if any(v is False for v in verdicts):
        return Outcome.FAILED.value, False
    if any(v is None for v in verdicts) or not verdicts:
        return Outcome.UNVERIFIED.value, None
    return Outcome.PASSED.value, True


@dataclass(frozen=True)
class Evidence:
    """What was measured of one artifact against the reference."""

    diff: TensorDiff
    match: DetectionMatch
    reference_ap: float | None = None  # AP50 of the reference on the validation set
    ap: float | None = None  # AP50 of the artifact (measured only where AP can judge)
    faces: int | None = None  # faces in the validation set
    validation: str | None = None  # what the validation set is

    @property
    def ap_drop(self) -> float | None:
        return None if self.ap is None or self.reference_ap is None else self.reference_ap - self.ap


@dataclass(frozen=True)
class Verdict:
    rule: str  # tensor | detection | scores | ap | none
    status: Status
    evidence: Evidence
    required: dict[str, float] = field(default_factory=dict)
    reason: str = ""  # why this rule decided (a fallback) or why nothing could

    @property
    def passed(self) -> bool | None:
        """True or False when a rule judged; None when the artifact is unverified."""
        return None if self.status is Status.UNVERIFIED else self.status is Status.PASS

    def to_dict(self) -> dict[str, Any]:
        ev = self.evidence
        return {
            "rule": self.rule,
            "status": self.status.value,
            "passed": self.passed,
            "required": dict(self.required),
            "reason": self.reason,
            "score_abs": ev.diff.score_abs,
            "box_rel": ev.diff.box_rel,
            "anchors": ev.diff.anchors,
            "match": ev.match.to_dict(),
            "reference_ap": ev.reference_ap,
            "ap": ev.ap,
            "ap_drop": ev.ap_drop,
            "validation": ev.validation,
        }


class Rule(Protocol):
    @property
    def name(self) -> str: ...

    def judge(self, evidence: Evidence) -> Verdict | str:
        """A verdict, or the reason this rule has no evidence to judge."""
        ...


def _status(ok: bool) -> Status:
    return Status.PASS if ok else Status.FAIL


@dataclass(frozen=True)
class TensorRule:
    """Every output within tolerance of the reference (artifacts that compute the same
    function to rounding)."""

    score_atol: float = FP32_TOL
    box_rtol: float = FP32_TOL
    name: str = "tensor"

    def judge(self, evidence: Evidence) -> Verdict | str:
        if evidence.diff.anchors == 0:
            return "no outputs were compared"
        ok = evidence.diff.ok(self.score_atol, self.box_rtol)
        return Verdict(self.name, _status(ok), evidence, {"score_abs": self.score_atol, "box_rel": self.box_rtol})


@dataclass(frozen=True)
class DetectionRule:
    """The reference's detections found again, anchor by anchor."""

    min_match: float
    name: str = "detection"

    @property
    def min_reference(self) -> int:
        """Detections needed before a miss can show at this rate's resolution: with
        fewer than 1 / (1 - rate), the rule could not tell the rate from 100%."""
        return math.ceil(round(1.0 / (1.0 - self.min_match), 6))

    def judge(self, evidence: Evidence) -> Verdict | str:
        n = evidence.match.reference
        if n < self.min_reference:
            return (
                f"{n} reference detection(s) (score >= {DET_SCORE_THRESHOLD}), fewer than the {self.min_reference} "
                f"a {self.min_match:.0%} match rate needs"
            )
        ok = (evidence.match.rate or 0.0) >= self.min_match
        required = {"match_rate": self.min_match, "iou": DET_IOU, "score_diff": DET_SCORE_DIFF}
        return Verdict(self.name, _status(ok), evidence, required)


@dataclass(frozen=True)
class ScoreRule:
    """Every anchor's score within ``score_atol`` of the reference: the tensor-level rule
    for reduced precision, where boxes of non-detections may legitimately wander."""

    score_atol: float = REDUCED_SCORE_TOL
    name: str = "scores"

    def judge(self, evidence: Evidence) -> Verdict | str:
        if evidence.diff.anchors == 0:
            return "no outputs were compared"
        ok = evidence.diff.score_abs <= self.score_atol
        return Verdict(self.name, _status(ok), evidence, {"score_abs": self.score_atol})


@dataclass(frozen=True)
class ApRule:
    """AP50 on a labelled set (the challenge metric, full pipeline) within ``max_drop``."""

    max_drop: float = MAX_AP_DROP
    min_reference_ap: float = MIN_REFERENCE_AP
    name: str = "ap"

    def can_judge(self, reference_ap: float | None) -> bool:
        return reference_ap is not None and reference_ap >= self.min_reference_ap

    def judge(self, evidence: Evidence) -> Verdict | str:
        if evidence.reference_ap is None:
            return "no labelled validation set"
        if not self.can_judge(evidence.reference_ap):
            return f"reference AP50 {evidence.reference_ap:.3f} < {self.min_reference_ap}: the weights do not detect enough for AP to judge"
        drop = evidence.ap_drop
        if drop is None:
            raise ValueError("the AP rule needs the artifact's AP")
        return Verdict(self.name, _status(drop <= self.max_drop + 1e-12), evidence, {"max_ap_drop": self.max_drop})


def fp32_tolerance(backend: str = "") -> float:
    """The tensor rule's tolerance for an fp32 artifact of ``backend``: the registry
    record's ``fp32_tolerance`` where it sets one (TensorRT), else :data:`FP32_TOL`."""
    known = {b.name: b for b in backends()}
    record = known.get(backend)
    return record.fp32_tolerance if record is not None and record.fp32_tolerance is not None else FP32_TOL


def rules_for(precision: str, backend: str = "") -> tuple[Rule, ...]:
    """The chain of rules for an artifact, most decisive first."""
    if precision == "fp32":
        tol = fp32_tolerance(backend)
        return (TensorRule(tol, tol),)
    if precision in ("fp16", "bf16"):
        return (DetectionRule(FP16_MIN_MATCH), ScoreRule())
    if precision == "int8":
        return (ApRule(), DetectionRule(INT8_MIN_MATCH))
    raise ValueError(f"no verification rule for precision {precision!r}")


def judge(evidence: Evidence, precision: str, backend: str = "") -> Verdict:
    """The verdict of the first rule in the chain that can judge; unverified otherwise."""
    return judge_with(evidence, rules_for(precision, backend))


def judge_with(evidence: Evidence, rules: tuple[Rule, ...]) -> Verdict:
    """The verdict of the first rule in ``rules`` that can judge; unverified otherwise."""
    reasons: list[str] = []
    for rule in rules:
        outcome = rule.judge(evidence)
        if isinstance(outcome, Verdict):
            if reasons:  # a fallback decided: say why the stronger rule could not
                return Verdict(outcome.rule, outcome.status, evidence, outcome.required, "; ".join(reasons))
            return outcome
        reasons.append(f"{rule.name} rule: {outcome}")
    return Verdict("none", Status.UNVERIFIED, evidence, {}, "; ".join(reasons))


def needs_ap(precision: str) -> bool:
    return any(isinstance(rule, ApRule) for rule in rules_for(precision))

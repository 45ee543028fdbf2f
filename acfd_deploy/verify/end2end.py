"""Judging an end-to-end artifact (image in, faces out) against the reference pipeline:
:class:`~acfd_deploy.pipeline.detector.Detector` over the PyTorch reference, with the
artifact's own test scales, resize policy and post-processing, on the same decoded images.

There are no anchors to compare, so the evidence is the final detections, matched one to
one (each reference detection to the best-overlapping unused candidate):

* fp32: every reference detection scoring >= 0.3 found again at IoU >= 0.99 with its score
  within 1e-3, and no candidate scoring >= 0.3 left without a reference detection (the
  graph computes the pipeline's function; measured: boxes within ~3e-4 px, scores ~3e-7);
* fp16 and int8: judged as their raw networks are (anchor-level detection match, AP
  within 1 point), on the raw file the graph wraps (``network_file`` / ``network_sha256``
  in its metadata; the verdict the export already gave that file is reused), and the
  graph around it must equal the pipeline over that same network at the fp32 rule.
  Why not the final detections against the fp32 reference: a reduced-precision score
  that moves by 1e-4 flips NMS between two overlapping faces (measured on a crowd: 3 of
  64 detections replaced by their neighbour), which says nothing about the artifact. Where
  the raw file is not beside the graph, the final detections are matched instead (99% /
  95% at IoU >= 0.9, score within 0.02).

The images (:func:`end2end_images`) are what a deployed detector meets: sizes that are not
multiples of 32 and differ from the test scales in both directions, batches of two, a
scene without faces and a crowd of more than 100 faces (the top-100 cut must agree).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from acfd_deploy.fileio import sha256_file
from acfd_deploy.pipeline.detector import Detections, Detector, DetectorConfig
from acfd_deploy.pipeline.postprocess import PostprocessConfig
from acfd_deploy.runtime.base import Runner
from acfd_deploy.verify.compare import DET_IOU, DET_SCORE_DIFF, DET_SCORE_THRESHOLD, DetectionMatch, TensorDiff, paired_iou
from acfd_deploy.verify.rules import FP16_MIN_MATCH, INT8_MIN_MATCH, ApRule, DetectionRule, Evidence, Rule, Status, Verdict, judge_with

E2E_IOU = 0.99
E2E_SCORE_DIFF = 1e-3
# (height, width, images, faces): not multiples of 32, smaller and larger than the scales
# (the crowd's size follows the artifact's largest test scale)
VERIFY_SIZES: tuple[tuple[int, int, int, str], ...] = (
    (333, 517, 2, "scenes"),
    (517, 333, 1, "scenes"),
    (720, 1280, 1, "scenes"),
    (0, 0, 1, "crowd"),
    (300, 400, 1, "empty"),
)


@dataclass
class EndToEndMatch(DetectionMatch):
    """A :class:`DetectionMatch` of final detections, with the candidates that match none."""

    extra: int = 0  # candidate detections (score >= threshold) matched to no reference detection
    max_box_rel: float = 0.0  # largest box coordinate difference of a matched pair, relative to max(|coordinate|, 1)
    pairs: int = 0  # matched pairs the differences are taken over


def match_detections(
    refs: list[Detections],
    cands: list[Detections],
    iou_threshold: float,
    score_diff: float,
    score_threshold: float = DET_SCORE_THRESHOLD,
) -> EndToEndMatch:
    """One-to-one matching per image: each reference detection (best first) takes the
    unused candidate it overlaps most. Reference detections scoring >= ``score_threshold``
    must be found; a candidate that scores >= the threshold and was taken by no reference
    detection (of any score, so a pair straddling the threshold is no miss) is extra."""
    n_ref = matched = n_cand = extra = 0
    ious: list[float] = []
    diffs: list[float] = []
    box_rel, pairs = 0.0, 0
    for ref, cand in zip(refs, cands, strict=True):
        used = np.zeros(len(cand), bool)
        for j in range(len(ref)):
            iou = paired_iou(np.broadcast_to(ref.boxes[j], cand.boxes.shape), cand.boxes) if len(cand) else np.zeros(0)
            iou = np.where(used, -1.0, iou)
            best = int(iou.argmax()) if len(cand) else -1
            found = best >= 0 and iou[best] >= iou_threshold and abs(float(ref.scores[j]) - float(cand.scores[best])) <= score_diff
            if found:
                used[best] = True
                pairs += 1
                rb, cb = ref.boxes[j].astype(np.float64), cand.boxes[best].astype(np.float64)
                box_rel = max(box_rel, float(np.abs(rb - cb).max() / max(np.abs(rb).max(), 1.0)))
            if ref.scores[j] >= score_threshold:
                n_ref += 1
                matched += int(found)
                ious.append(float(iou[best]) if best >= 0 else 0.0)
                diffs.append(abs(float(ref.scores[j]) - float(cand.scores[best])) if found else float("inf"))
        strong = cand.scores >= score_threshold
        n_cand += int(strong.sum())
        extra += int((strong & ~used).sum())
    finite = [d for d in diffs if np.isfinite(d)]
    return EndToEndMatch(
        n_ref, matched, n_cand, float(np.mean(ious)) if ious else float("nan"), max(finite, default=float("nan")), extra, box_rel, pairs
    )


@dataclass(frozen=True)
class EndToEndRule:
    """The fp32 rule: every reference detection found again, none extra."""

    iou: float = E2E_IOU
    score_diff: float = E2E_SCORE_DIFF
    name: str = "end2end"

    def judge(self, evidence: Evidence) -> Verdict | str:
        match = evidence.match
        if match.reference == 0:
            return f"no reference detection scores >= {DET_SCORE_THRESHOLD} on the verification images"
        extra = match.extra if isinstance(match, EndToEndMatch) else 0
        ok = match.matched == match.reference and extra == 0
        required = {"match_rate": 1.0, "iou": self.iou, "score_diff": self.score_diff, "extra": 0}
        return Verdict(self.name, Status.PASS if ok else Status.FAIL, evidence, required)


def end2end_rules(precision: str) -> tuple[Rule, ...]:
    """The chain of rules for an end-to-end artifact of ``precision``."""
    if precision == "fp32":
        return (EndToEndRule(),)
    if precision in ("fp16", "bf16"):
        return (DetectionRule(FP16_MIN_MATCH),)
    if precision == "int8":
        return (ApRule(), DetectionRule(INT8_MIN_MATCH))
    raise ValueError(f"no end-to-end verification rule for precision {precision!r}")


def end2end_images(scales: tuple[tuple[int, int], ...], seed: int = 0) -> list[np.ndarray]:
    """The verification images for an artifact with these test ``scales`` (see the module
    docstring): scenes of the sizes in ``VERIFY_SIZES``, a crowd of small faces a little
    larger than the largest scale (so its faces stay detectable and outnumber 100), and a
    smooth gradient without faces. The same for every artifact of one configuration."""
    from acfd_deploy.data.synth import SynthConfig, generate_sample, sample_rng

    crowd = SynthConfig(min_face=18.0, max_face=30.0, max_faces=400, max_face_overlap=0.05, occlusion_prob=0.0, blur_prob=0.0)
    big_h, big_w = max(h for h, _ in scales), max(w for _, w in scales)
    images: list[np.ndarray] = []
    for k, (h, w, count, kind) in enumerate(VERIFY_SIZES):
        for i in range(count):
            rng = sample_rng(seed + 7001 + k, i)
            if kind == "empty":  # a smooth gradient: no face, no edges
                ramp = np.linspace(40, 220, w, dtype=np.float32)[None, :, None]
                images.append(np.broadcast_to(ramp, (h, w, 3)).astype(np.uint8))
            elif kind == "crowd":
                images.append(generate_sample(rng, big_h + 13, big_w + 19, crowd)[0])
            else:
                images.append(generate_sample(rng, h, w)[0])
    return images


def reference_config(runner: Runner, batch: int = 2) -> DetectorConfig:
    """The pipeline configuration an end-to-end runner was exported with."""
    info = runner.end2end
    if info is None:
        raise ValueError(f"{runner!r} is not an end-to-end runner (no info)")
    return DetectorConfig(
        scales=tuple(info.scales), keep_ratio=bool(info.keep_ratio), post=PostprocessConfig(**info.post), batch_size=batch
    )


class EndToEndVerifier:
    """Runs the reference pipeline once per end-to-end configuration and judges artifacts.

    ``parent`` (the raw verifier of the same export) judges the network inside a reduced-
    precision graph; ``network_verdicts`` maps a raw file's sha256 to the verdict it got."""

    def __init__(
        self,
        reference: Runner,
        images: list[np.ndarray] | None = None,
        validation: Any = None,
        batch: int = 2,
        parent: Any = None,
    ) -> None:
        self.reference = reference
        self.fixed_images = images  # None: end2end_images for each artifact's scales
        self.validation = validation
        self.batch = batch
        self.parent = parent
        self.network_verdicts: dict[tuple[str, str], Verdict] = {}
        self._refs: dict[str, tuple[list[np.ndarray], list[Detections]]] = {}
        self._ref_ap: dict[str, float] = {}

    def _key(self, config: DetectorConfig) -> str:
        return repr((config.scales, config.keep_ratio, config.post))

    def images_for(self, config: DetectorConfig) -> list[np.ndarray]:
        key = self._key(config)
        if key in self._refs:
            return self._refs[key][0]
        return self.fixed_images if self.fixed_images is not None else end2end_images(config.scales)

    def reference_detections(self, config: DetectorConfig) -> tuple[list[np.ndarray], list[Detections]]:
        """The images for ``config`` and the reference pipeline's detections on them (once)."""
        key = self._key(config)
        if key not in self._refs:
            images = self.images_for(config)
            self._refs[key] = (images, Detector(self.reference, config).detect(images))
        return self._refs[key]

    def evidence(self, runner: Runner, precision: str) -> Evidence:
        """The artifact's final detections against the reference pipeline's."""
        config = reference_config(runner, self.batch)
        images, refs = self.reference_detections(config)
        cands = Detector(runner, config).detect(images)
        strict = precision == "fp32"
        match = match_detections(refs, cands, E2E_IOU if strict else DET_IOU, E2E_SCORE_DIFF if strict else DET_SCORE_DIFF)
        if precision != "int8" or self.validation is None:
            return Evidence(_diffs(match), match)
        key = self._key(config)
        if key not in self._ref_ap:
            self._ref_ap[key] = _ap(self.reference, config, self.validation)
        ref_ap = self._ref_ap[key]
        ap = _ap(runner, config, self.validation) if ApRule().can_judge(ref_ap) else None
        return Evidence(_diffs(match), match, ref_ap, ap, self.validation.num_faces, self.validation.source)

    def verify(self, runner: Runner, precision: str | None = None) -> Verdict:
        precision = precision or runner.precision
        if precision != "fp32":
            network = self._network_of(runner)
            if network is not None:
                return self._verify_wrapped(runner, precision, network)
        return judge_with(self.evidence(runner, precision), end2end_rules(precision))

    def _network_of(self, runner: Runner) -> Path | None:
        """The raw file the graph wraps, where it lies beside it unchanged."""
        info, path = runner.end2end, runner.path
        name, digest = (info.network_file, info.network_sha256) if info is not None else ("", "")
        if self.parent is None or path is None or not name or not digest:
            return None
        candidate = Path(path).with_name(name)
        return candidate if candidate.is_file() and sha256_file(candidate) == digest else None

    def _verify_wrapped(self, runner: Runner, precision: str, network: Path) -> Verdict:
        from acfd_deploy.runtime.registry import load_runner

        key = (sha256_file(network), runtime_of(runner))
        with load_runner(network, device="cpu", backend=key[1]) as raw:
            config = reference_config(runner, self.batch)
            images = self.images_for(config)
            wrapped = match_detections(
                Detector(raw, config).detect(images), Detector(runner, config).detect(images), E2E_IOU, E2E_SCORE_DIFF, 0.0
            )
            if key not in self.network_verdicts:
                self.network_verdicts[key] = self.parent.verify(raw, precision, key[1])
        inner = self.network_verdicts[key]
        how = f"graph vs pipeline over {network.name}: {wrapped.matched} of {wrapped.reference} detections equal, {wrapped.extra} extra"
        if wrapped.matched != wrapped.reference or wrapped.extra or wrapped.reference == 0:
            return Verdict("end2end", Status.FAIL if wrapped.reference else Status.UNVERIFIED, Evidence(_diffs(wrapped), wrapped), {}, how)
        reason = f"its network {network.name} judged by the {inner.rule} rule; {how}"
        return Verdict(inner.rule, inner.status, inner.evidence, inner.required, f"{inner.reason}; {reason}" if inner.reason else reason)


def runtime_of(runner: Runner) -> str:
    """The registry backend a runner's network runs in (its raw file is judged there too)."""
    return "openvino" if runner.name.startswith("openvino") else "onnxruntime"


def _diffs(match: EndToEndMatch) -> TensorDiff:
    """The "tensor" figures of an end-to-end artifact: its matched detections' differences."""
    score = match.max_score_diff if match.max_score_diff == match.max_score_diff else 0.0
    return TensorDiff(score, match.max_box_rel, match.pairs)


def _ap(runner: Runner, config: DetectorConfig, val: Any) -> float:
    from acfd_deploy.eval.metric import evaluate

    found = Detector(runner, config).detect(val.images)
    gt = dict(zip(val.names, val.boxes))
    boxes = {n: d.boxes.astype(np.float64) for n, d in zip(val.names, found)}
    scores = {n: d.scores.astype(np.float64) for n, d in zip(val.names, found)}
    return evaluate(gt, boxes, scores).ap

"""Judging artifacts against one reference: the one procedure export, bench, serve and the
tests share, so one artifact gets one verdict everywhere."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from acfd_deploy.runtime.base import Runner
from acfd_deploy.verify.accuracy import ValidationSet, detection_ap
from acfd_deploy.verify.compare import DetectionMatch, ShapeMismatch, TensorDiff, detection_match, merge_diffs, merge_matches, tensor_diff
from acfd_deploy.verify.end2end import EndToEndVerifier
from acfd_deploy.verify.rules import ApRule, Evidence, Status, Verdict, judge, needs_ap

Outputs = tuple[np.ndarray, np.ndarray]


class Verifier:
    """Runs the reference once on ``inputs`` (and, for int8, once over ``validation``),
    then measures and judges any number of artifacts against it.

    ``imgsz`` and ``batch`` are how the AP check runs the validation set through the
    pipeline (one scale, batches of at most ``batch`` images); ``ap_reference`` may stand
    in for the reference there (the folded graph for the training graph).
    """

    def __init__(
        self,
        reference: Runner,
        inputs: Sequence[np.ndarray],
        validation: ValidationSet | None = None,
        imgsz: tuple[int, int] = (640, 640),
        batch: int = 4,
        ap_reference: Runner | None = None,
    ) -> None:
        if not inputs:
            raise ValueError("verification needs at least one input batch")
        self.reference = reference
        # the AP of the reference may come from a faster equivalent (the folded graph,
        # once it has passed the tensor rule against the training graph)
        self.ap_reference = ap_reference or reference
        self.inputs = list(inputs)
        self.validation = validation
        self.imgsz = imgsz
        self.batch = max(1, batch)
        self._reference_outputs: list[Outputs] | None = None
        self._reference_ap: float | None = None
        self._end_to_end: EndToEndVerifier | None = None

    @property
    def reference_outputs(self) -> list[Outputs]:
        if self._reference_outputs is None:
            self._reference_outputs = [self.reference.infer(b) for b in self.inputs]
        return self._reference_outputs

    @property
    def reference_ap(self) -> float | None:
        """AP50 of the reference on the validation set (None without one); measured once."""
        if self.validation is None:
            return None
        if self._reference_ap is None:
            self._reference_ap = detection_ap(self.ap_reference, self.validation, self.imgsz, self.batch)
        return self._reference_ap

    def outputs(self, runner: Runner) -> list[Outputs]:
        return [runner.infer(b) for b in self.inputs]

    def evidence(self, runner: Runner, precision: str, outputs: list[Outputs] | None = None) -> Evidence:
        """Tensor and detection figures always; AP where the precision's rules use it and
        the reference detects enough for AP to judge (an AP that cannot decide is not run)."""
        outs = outputs if outputs is not None else self.outputs(runner)
        refs = self.reference_outputs
        diff = merge_diffs([tensor_diff(r, o) for r, o in zip(refs, outs)])
        match = merge_matches([detection_match(r, o) for r, o in zip(refs, outs)])
        if not (needs_ap(precision) and self.validation is not None):
            return Evidence(diff, match)
        reference_ap = self.reference_ap
        ap = detection_ap(runner, self.validation, self.imgsz, self.batch) if ApRule().can_judge(reference_ap) else None
        return Evidence(diff, match, reference_ap, ap, self.validation.num_faces, self.validation.source)

    def verify(self, runner: Runner, precision: str | None = None, backend: str = "") -> Verdict:
        """The verdict for ``runner`` (its own precision unless given)."""
        precision = precision or runner.precision
        if runner.outputs == "detections":  # an end-to-end graph: judged on final detections
            return self.end_to_end.verify(runner, precision)
        try:
            evidence = self.evidence(runner, precision)
        except ShapeMismatch as exc:  # nothing to compare element by element: the artifact is wrong
            nothing = Evidence(TensorDiff(float("inf"), float("inf"), 0), DetectionMatch(0, 0, 0, float("nan"), float("nan")))
            return Verdict("tensor", Status.FAIL, nothing, {}, str(exc))
        verdict = judge(evidence, precision, backend)
        path = runner.path
        if path is not None and path.suffix == ".onnx":
            from acfd_deploy.fileio import sha256_file
            from acfd_deploy.verify.end2end import runtime_of

            # an end-to-end graph around this file, in the same runtime, reuses its verdict
            self.end_to_end.network_verdicts[(sha256_file(path), runtime_of(runner))] = verdict
        return verdict

    @property
    def end_to_end(self) -> EndToEndVerifier:
        """The judge of end-to-end artifacts, sharing this verifier's reference and
        validation set (its reference pipeline runs once per end-to-end configuration)."""
        if self._end_to_end is None:
            self._end_to_end = EndToEndVerifier(self.ap_reference, validation=self.validation, batch=2, parent=self)
        return self._end_to_end

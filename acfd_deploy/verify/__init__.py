"""Verification: one layer that owns how an artifact is judged against its reference.

``compare`` measures (tensor differences, detection matches), ``accuracy`` measures AP50
through the full pipeline, ``rules`` maps precision to rule to tolerance and returns typed
:class:`Verdict` objects, ``inputs`` makes the comparison images, and :class:`Verifier`
puts them together for acfd-export, acfd-bench, acfd-serve and the tests.
"""

from acfd_deploy.verify.inputs import parity_inputs
from acfd_deploy.verify.rules import Evidence, Status, Verdict, judge, rules_for
from acfd_deploy.verify.verifier import Verifier

__all__ = ["Evidence", "Status", "Verdict", "Verifier", "judge", "parity_inputs", "rules_for"]

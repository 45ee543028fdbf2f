"""The iCartoon Face Challenge metric, as its official scorer computes it (pure numpy)."""

from acfd_deploy.eval.audit import DetectionAudit, audit_detections, sorted_and_cleaned
from acfd_deploy.eval.metric import EvalResult, evaluate, iou_plus1, match_image, voc_ap

__all__ = ["DetectionAudit", "EvalResult", "audit_detections", "evaluate", "iou_plus1", "match_image", "sorted_and_cleaned", "voc_ap"]

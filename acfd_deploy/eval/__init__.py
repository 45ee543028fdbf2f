"""The iCartoon Face Challenge metric (DESIGN.md section 5), as pure numpy functions."""

from acfd_deploy.eval.metric import EvalResult, evaluate, iou_plus1, match_image, voc_ap

__all__ = ["EvalResult", "evaluate", "iou_plus1", "match_image", "voc_ap"]

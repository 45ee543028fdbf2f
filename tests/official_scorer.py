"""The iCartoon Face Challenge's official scorer, transcribed independently for the tests.

Written as the VOC devkit's ``voc_eval``/``voc_ap`` are written (straight-line loops,
``open()`` and ``split(',')``), following the challenge's ``run.py`` as the project
checked it: no row is validated, each image's detections are matched in file order,
only ground-truth images are visited (in the order the ground truth first names them),
then all scores are ranked with numpy's default ``np.argsort(-confidence)``. It shares
no code with ``acfd_deploy`` on purpose: it is what the package is checked against.
"""

from __future__ import annotations

import numpy as np


def voc_ap(rec, prec):
    """All-points AP, the devkit's code."""
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    for i in range(mpre.size - 1, 0, -1):
        mpre[i - 1] = np.maximum(mpre[i - 1], mpre[i])
    i = np.where(mrec[1:] != mrec[:-1])[0]
    ap = np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1])
    return ap


def official_ap(gt_csv, pred_csv, ovthresh=0.5):
    # ground truth: image -> boxes, images in the order the file first names them
    with open(gt_csv) as f:
        gt_lines = f.readlines()
    imagenames = []
    recs = {}
    for line in gt_lines:
        parts = line.strip().split(",")
        name = parts[0]
        if name not in recs:
            recs[name] = []
            imagenames.append(name)
        recs[name].append([float(parts[1]), float(parts[2]), float(parts[3]), float(parts[4])])
    class_recs = {}
    npos = 0
    for name in imagenames:
        bbox = np.array(recs[name])
        det = [False] * len(recs[name])
        npos = npos + len(recs[name])
        class_recs[name] = {"bbox": bbox, "det": det}

    # detections: image -> rows, in file order
    with open(pred_csv) as f:
        pred_lines = f.readlines()
    dets = {}
    for line in pred_lines:
        parts = line.strip().split(",")
        name = parts[0]
        if name not in dets:
            dets[name] = []
        dets[name].append([float(parts[1]), float(parts[2]), float(parts[3]), float(parts[4]), float(parts[6])])

    # match each ground-truth image's detections in file order
    tp = []
    fp = []
    confidence = []
    for name in imagenames:
        if name not in dets:
            continue
        R = class_recs[name]
        BBGT = R["bbox"].astype(float)
        for d in dets[name]:
            bb = np.array(d[:4]).astype(float)
            ovmax = -np.inf
            jmax = -1
            if BBGT.size > 0:
                with np.errstate(all="ignore"):
                    ixmin = np.maximum(BBGT[:, 0], bb[0])
                    iymin = np.maximum(BBGT[:, 1], bb[1])
                    ixmax = np.minimum(BBGT[:, 2], bb[2])
                    iymax = np.minimum(BBGT[:, 3], bb[3])
                    iw = np.maximum(ixmax - ixmin + 1.0, 0.0)
                    ih = np.maximum(iymax - iymin + 1.0, 0.0)
                    inters = iw * ih
                    uni = (
                        (bb[2] - bb[0] + 1.0) * (bb[3] - bb[1] + 1.0)
                        + (BBGT[:, 2] - BBGT[:, 0] + 1.0) * (BBGT[:, 3] - BBGT[:, 1] + 1.0)
                        - inters
                    )
                    overlaps = inters / uni
                ovmax = np.max(overlaps)
                jmax = np.argmax(overlaps)
            if ovmax >= ovthresh:
                if not R["det"][jmax]:
                    tp.append(1.0)
                    fp.append(0.0)
                    R["det"][jmax] = True
                else:
                    tp.append(0.0)
                    fp.append(1.0)
            else:
                tp.append(0.0)
                fp.append(1.0)
            confidence.append(d[4])

    # rank all detections by score, numpy's default sort
    confidence = np.array(confidence, dtype=float)
    tp = np.array(tp, dtype=float)
    fp = np.array(fp, dtype=float)
    sorted_ind = np.argsort(-confidence)
    tp = tp[sorted_ind]
    fp = fp[sorted_ind]
    fp = np.cumsum(fp)
    tp = np.cumsum(tp)
    rec = tp / float(npos)
    prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    ap = voc_ap(rec, prec)
    return float(ap)

"""acfd-eval: the iCartoon Face Challenge metric (AP50) on a prediction CSV or a model.

The printed ``AP50:`` is the official scorer's number (:mod:`acfd_deploy.eval.metric`):
prediction rows are scored as the official scorer reads them, reversed corners, ``nan``
and ``inf`` included, each image's rows matched in file order. Such rows and unsorted
images are warned about, and where they change the AP, the AP of the file sorted and
cleaned is printed too. Ground truth is cleaned (rows with reversed corners or
non-finite values dropped, boxes clipped to the image), with a warning saying so. The
run itself is :func:`acfd_deploy.eval.run.run_eval`; this module parses the flags and
prints what it reports.

Exit 0 with the AP; exit 2 for input the metric cannot use (missing, empty or
malformed files, a prediction CSV without scores). Rows that cannot be parsed are
skipped with a warning that counts them and names their first line numbers.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from acfd_deploy.cli.common import EXIT_OK, add_pipeline_args, detector_from_args, finite_float, make_parser, run
from acfd_deploy.errors import AcfdError
from acfd_deploy.eval.run import EvalOptions, run_eval

PROG = "acfd-eval"


def _warn(message: str) -> None:
    print(f"{PROG}: warning: {message}", file=sys.stderr)


def _body(args: argparse.Namespace) -> int:
    if bool(args.pred) == bool(args.model):
        raise AcfdError("give exactly one of --pred PRED.csv or --model PATH (with --images DIR)")
    if args.model and not args.images:
        raise AcfdError("--model needs --images DIR (the images the ground truth names)")
    opts = EvalOptions(
        gt=args.gt,
        pred=args.pred or None,
        images=args.images or None,
        model=args.model or None,
        save_pred=args.save_pred or None,
        iou=args.iou,
        allow_empty_pred=args.allow_empty_pred,
        progress=not args.no_progress,
    )
    # built only once the ground truth has been read: a bad --gt is reported before the model loads
    detector = (lambda: detector_from_args(args, PROG)) if args.model else None
    report = run_eval(opts, detector, warn=_warn)
    for line in report.summary_lines():
        print(line)
    if args.json:
        report.write_json(args.json)
    if args.plot:
        from acfd_deploy.eval.plot import plot_pr

        plot_pr(report.result, args.plot)
    return EXIT_OK


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    parser = make_parser(prog, "Score detections with the iCartoon Face Challenge metric (all-points VOC AP at IoU 0.5, +1 pixel areas).")
    parser.add_argument("--gt", required=True, help="ground truth CSV (image,x1,y1,x2,y2[,face])")
    parser.add_argument("--pred", help="detections CSV (image,x1,y1,x2,y2,face,score)")
    parser.add_argument("--images", help="image directory: needed with --model; with --pred, boxes are checked against the image sizes")
    add_pipeline_args(parser, default_demo=False)
    parser.add_argument("--save-pred", help="with --model: also write the detections CSV here")
    parser.add_argument("--json", help="write the metrics as JSON here")
    parser.add_argument("--plot", help="write the precision-recall curve as a PNG here")
    parser.add_argument("--iou", type=finite_float, default=0.5, help="IoU threshold of a match (the challenge: 0.5)")
    parser.add_argument("--allow-empty-pred", action="store_true", help="score an empty prediction CSV as AP 0 instead of refusing it")
    return parser


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    return run(prog, _body, build_parser(prog), argv)


if __name__ == "__main__":
    sys.exit(main())

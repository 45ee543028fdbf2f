"""acfd-detect: images in, faces out (annotated images, a challenge CSV and a JSON)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from acfd_deploy.cli.common import EXIT_OK, add_pipeline_args, detector_from_args, finite_float, make_parser, run
from acfd_deploy.errors import AcfdError

PROG = "acfd-detect"


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    parser = make_parser(
        prog,
        "Detect cartoon faces: writes annotated/, detections.csv (challenge format) and detections.json into --out, "
        "which is replaced as a whole when the run is complete.",
    )
    parser.add_argument("inputs", nargs="+", metavar="IMAGE_OR_DIR", help="image files and/or folders of images")
    add_pipeline_args(parser)
    out = parser.add_argument_group("output")
    out.add_argument(
        "--conf", type=finite_float, default=0.5, help="score needed for a box to be drawn (the CSV and JSON keep every detection)"
    )
    out.add_argument("--out", default="runs/detect", metavar="DIR", help="output folder")
    out.add_argument("--no-draw", action="store_true", help="skip the annotated images")
    return parser


def _body(args: argparse.Namespace) -> int:
    from acfd_deploy.pipeline.io import find_images
    from acfd_deploy.pipeline.writer import write_detections

    if not 0.0 <= args.conf <= 1.0:
        raise AcfdError(f"--conf must be in [0, 1], got {args.conf}")
    paths = find_images(args.inputs)
    if not paths:
        raise AcfdError("no images found in " + ", ".join(args.inputs))
    detector = detector_from_args(args, PROG)
    with detector.runner:
        report = write_detections(detector, paths, args.out, args.conf, not args.no_draw, not args.no_progress, {"model": str(args.model)})
    out = report.out
    print(
        f"{report.images} image(s), {report.detections} detection(s) ({report.confident} with score >= {args.conf:g}) "
        f"-> {out / 'detections.csv'}, {out / 'detections.json'}"
    )
    if not args.no_draw:
        print(f"annotated images -> {out / 'annotated'}")
    if report.errors:
        print(
            f"{PROG}: warning: {len(report.errors)} of {len(paths)} file(s) could not be read (listed in detections.json)", file=sys.stderr
        )
    return EXIT_OK


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    return run(prog, _body, build_parser(prog), argv)


if __name__ == "__main__":
    sys.exit(main())

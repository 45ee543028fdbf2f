"""acfd-synth: synthetic cartoon-face images and their ground truth (iCartoonFace CSV)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from acfd_deploy.cli.common import EXIT_OK, add_imgsz, any_int, make_parser, positive_int, run
from acfd_deploy.errors import AcfdError

PROG = "acfd-synth"


def _body(args: argparse.Namespace) -> int:
    from acfd_deploy.data.icartoon import read_annotations
    from acfd_deploy.data.synth import write_dataset

    height, width = args.imgsz
    if height < 32 or width < 32:
        raise AcfdError(f"--imgsz must be at least 32 32, got {height} {width}")
    if height * width > 64_000_000:
        raise AcfdError(f"--imgsz {height} {width} is over 64 MP")
    kind = "train" if args.format == "train" else "val"
    csv_path = write_dataset(args.out, args.num, seed=args.seed, size=(height, width), kind=kind, progress=not args.no_progress)
    faces = read_annotations(csv_path, kind=kind).num_boxes
    print(f"{args.num} image(s), {faces} face(s) -> {csv_path}")
    return EXIT_OK


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    parser = make_parser(prog, "Draw synthetic cartoon faces: DIR/images/*.jpg and DIR/gt.csv in the iCartoonFace format.")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--num", required=True, type=positive_int, metavar="N", help="number of images")
    parser.add_argument("--seed", type=any_int, default=0, metavar="N", help="the same seed gives the same images")
    add_imgsz(parser, (640, 640), "image size")
    parser.add_argument("--size", nargs=2, type=positive_int, dest="imgsz", help=argparse.SUPPRESS)  # the old name
    parser.add_argument(
        "--format", choices=("val", "train"), default="val", help="CSV columns: val = image,x1,y1,x2,y2,face; train = image,x1,y1,x2,y2"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    return run(prog, _body, build_parser(prog), argv)


if __name__ == "__main__":
    sys.exit(main())

"""acfd: one command with the same subcommands and flags as the acfd-* scripts
(``acfd export --fp16`` is ``acfd-export --fp16``), as users of ``yolo export`` expect."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from acfd_deploy.cli.common import EXIT_BAD_INPUT, EXIT_OK

COMMANDS = {
    "export": ("acfd_deploy.cli.export", "checkpoint -> verified ONNX / TensorRT artifacts and their parity table"),
    "detect": ("acfd_deploy.cli.detect", "images -> faces (annotated images, challenge CSV, JSON)"),
    "eval": ("acfd_deploy.cli.evaluate", "the challenge metric (AP50) on a prediction CSV or a model"),
    "bench": ("acfd_deploy.cli.bench", "latency per image, the 50 ms budget, parity, regression gate"),
    "serve": ("acfd_deploy.cli.serve", "serve a model behind Triton Inference Server"),
    "train": ("acfd_deploy.cli.train", "train ACFD (DAM, MBC loss) on iCartoonFace-format or synthetic data"),
    "synth": ("acfd_deploy.cli.synth", "synthetic cartoon-face images and their ground truth"),
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: acfd COMMAND [flags]   (acfd COMMAND --help for its flags)", "", "commands:"]
    lines += [f"  {name.ljust(width)}  {text}" for name, (_, text) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(_usage(), file=sys.stdout if args else sys.stderr)
        return EXIT_OK if args else EXIT_BAD_INPUT
    if args[0] == "--version":
        from acfd_deploy import __version__

        print(f"acfd (acfd-deploy) {__version__}")
        return EXIT_OK
    name = args[0]
    if name not in COMMANDS:
        print(f"acfd: error: unknown command {name!r}; choose from {', '.join(COMMANDS)} (see acfd --help)", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        module = importlib.import_module(COMMANDS[name][0])
    except ModuleNotFoundError as exc:
        print(f"acfd: error: acfd {name} is not available in this installation ({exc.name} is missing)", file=sys.stderr)
        return EXIT_BAD_INPUT
    return int(module.main(args[1:], prog=f"acfd {name}"))


if __name__ == "__main__":
    sys.exit(main())

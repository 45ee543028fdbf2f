"""What every command shares: one flag vocabulary, exit codes, one-line errors, signals.

Exit codes (docs/design.md#public-contracts): 0 success, 1 a check failed (parity,
budget, regression: a :class:`CheckFailed`, one line), 2 bad usage or bad input (one line
on stderr), 3 an internal error (a bug: one line, the traceback with ``--debug``), 130
after Ctrl-C and 143 after SIGTERM, each once the command has cleaned up what it was
writing.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from acfd_deploy.errors import AcfdError, CheckFailed, Terminated, one_line

T = TypeVar("T")

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_BUG = 3  # an unexpected exception: never confused with a failed check
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Help that shows a default only where there is one worth reading: never
    "(default: None)" or "(default: False)", and sizes as "640 640", not "(640, 640)"."""

    def _format_args(self, action: argparse.Action, default_metavar: str) -> str:
        if isinstance(action, _ImageSize):
            return "H [W]"
        return super()._format_args(action, default_metavar)

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            "%(default)" in text
            or "default:" in text.lower()
            or action.required
            or default is None
            or default is False
            or default is True
            or default == argparse.SUPPRESS
            or isinstance(action, (argparse._StoreTrueAction, argparse._VersionAction, argparse._HelpAction))
            or (isinstance(default, (list, tuple)) and not default)
        ):
            return text
        shown = " ".join(map(str, default)) if isinstance(default, (list, tuple)) else str(default)
        return f"{text} (default: {shown})"


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line and exit 2 like every other bad input."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see --help)\n")


def make_parser(prog: str, description: str, epilog: str | None = None) -> argparse.ArgumentParser:
    from acfd_deploy import __version__

    parser = _Parser(prog=prog, description=description, epilog=epilog, formatter_class=_Formatter)
    parser.add_argument("--version", action="version", version=f"{prog} (acfd-deploy) {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks instead of one-line errors")
    return parser


# ---------------------------------------------------------------- the shared vocabulary


def number(
    kind: type[int] | type[float], what: str, low: float | None = None, high: float | None = None, *, above: float | None = None
) -> Callable[[str], Any]:
    """An argparse type for a finite number of ``kind`` within [low, high] (and greater
    than ``above``), with a message that names ``what`` ("a port", "microseconds", ...)
    when it is not. Every number flag of every command goes through it, so nan and inf
    are refused everywhere (tests/test_cli_numbers.py walks every parser)."""

    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not math.isfinite(value):  # nan passes every bound check, inf every lower one
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        if (low is not None and value < low) or (high is not None and value > high) or (above is not None and value <= above):
            bounds = f" ({low}..{high})" if low is not None and high is not None else ""
            raise argparse.ArgumentTypeError(f"expected {what}{bounds}, got {value}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    parse.number_kind = kind  # type: ignore[attr-defined]  # how tests find every number flag
    return parse


positive_int = number(int, "a positive integer", 1)
non_negative_int = number(int, "a non-negative integer", 0)
any_int = number(int, "an integer")
positive_float = number(float, "a positive number", above=0)
finite_float = number(float, "a number")
non_negative_float = number(float, "a non-negative number", 0)


class _ImageSize(argparse.Action):
    """``--imgsz H W``, or one number for a square."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, option: str | None = None) -> None:
        if len(values) not in (1, 2):
            parser.error(f"{option} takes H W, or one number for a square, got {len(values)} numbers")
        setattr(namespace, self.dest, (values[0], values[-1]))


def add_imgsz(parser: argparse.ArgumentParser | Any, default: tuple[int, int], help: str, *flags: str) -> None:
    """``--imgsz H W``, or one number for a square (other flag names for other sizes)."""
    parser.add_argument(
        *(flags or ("--imgsz",)),
        nargs="+",
        type=positive_int,
        action=_ImageSize,
        default=tuple(default),
        help=f"{help}; H W or one number",
    )


def add_device(parser: argparse.ArgumentParser | Any, help: str = "where the model runs") -> None:
    parser.add_argument(
        "--device", default="auto", metavar="{auto,cpu,cuda,cuda:N}", type=_device_arg, help=f"{help}; auto is cuda where there is a GPU"
    )


def _device_arg(text: str) -> str:
    from acfd_deploy.runtime.device import parse_device

    try:
        return str(parse_device(text))
    except AcfdError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def backend_names() -> list[str]:
    from acfd_deploy.runtime.registry import backends

    return [b.name for b in backends()]


def model_help(default_demo: bool) -> str:
    from acfd_deploy.runtime.registry import backends

    kinds = ", ".join(f"{'/'.join(b.suffixes) or '/'.join(s + '://' for s in b.schemes)} ({b.name})" for b in backends())
    return f"model or artifact: {kinds}" + ("; default: the bundled demo model" if default_demo else "")


def options_from_args(cls: type[T], args: argparse.Namespace, **overrides: Any) -> T:
    """An options dataclass from parsed flags, the one way every command builds its
    options: each field from the flag of the same name (its ``dest``), ``overrides`` where
    a flag's name or form differs (``simplify=not args.no_simplify``), the dataclass's
    default for a field no flag sets. The dataclass validates what it gets, in one place."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise TypeError(f"{cls.__name__} has no field(s) {', '.join(unknown)}")
    given = {name: value for name, value in vars(args).items() if name in names}
    return cls(**{**given, **overrides})


# ---------------------------------------------------------------- running a command


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    """SIGTERM raises :class:`Terminated`, so cleanup runs as it does for Ctrl-C."""

    def handler(signum: int, frame: object) -> None:
        raise Terminated()

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals to the host
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run(prog: str, body: Callable[[argparse.Namespace], int], parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    args = parser.parse_args(argv)
    try:
        with _sigterm_raises():
            return body(args)
    except AcfdError as exc:
        if args.debug:
            raise
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except CheckFailed as exc:
        if args.debug:
            raise
        print(f"{prog}: FAILED: {one_line(exc)}", file=sys.stderr)
        return EXIT_CHECK_FAILED
    except KeyboardInterrupt:
        if args.debug:
            raise
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Terminated:
        print(f"{prog}: terminated (SIGTERM)", file=sys.stderr)
        return EXIT_TERMINATED
    except Exception as exc:
        if args.debug:
            raise
        what = one_line(exc, 300)
        print(f"{prog}: internal error: {type(exc).__name__}: {what} (a bug; rerun with --debug for the traceback)", file=sys.stderr)
        return EXIT_BUG


# ---------------------------------------------------------------- the detection pipeline's flags


def add_scale_args(group: Any, note: str = "") -> None:
    """How images are sized for the network (``--imgsz`` or ``--ms-test``, ``--keep-ratio``):
    the same flags, defaults and help wherever the detection pipeline runs."""
    from acfd_deploy.pipeline.detector import DEFAULT_SCALE

    scale = group.add_mutually_exclusive_group()
    scale.add_argument("--ms-test", action="store_true", help="the paper's multi-scale test: 480x645, 640x860 and 800x1075, merged")
    add_imgsz(scale, DEFAULT_SCALE, "single test scale (the paper's middle one)" + note)
    group.add_argument(
        "--keep-ratio",
        action="store_true",
        help="keep each image's aspect ratio (fit inside H x W, pad with the pixel mean) instead of resizing to exactly H x W" + note,
    )


def scales_from_args(args: argparse.Namespace) -> tuple[tuple[int, int], ...]:
    """The test scales the :func:`add_scale_args` flags ask for: the paper's three with
    ``--ms-test``, else the one ``--imgsz``."""
    from acfd_deploy.pipeline.detector import MS_TEST_SCALES

    return MS_TEST_SCALES if args.ms_test else (tuple(args.imgsz),)


def add_pipeline_args(parser: argparse.ArgumentParser, model_required: bool = False, default_demo: bool = True) -> None:
    """The model and how images reach it: acfd-detect and acfd-eval --model."""
    group = parser.add_argument_group("model and pipeline")
    group.add_argument("--model", metavar="PATH|URL", required=model_required, help=model_help(default_demo and not model_required))
    group.add_argument(
        "--backend", choices=backend_names(), help="run the model with this backend where several read it (OpenVINO also reads .onnx)"
    )
    add_scale_args(group)
    group.add_argument("--batch", type=positive_int, default=4, metavar="N", help="images per runner call (a batch of images, per scale)")
    add_device(group)
    group.add_argument("--no-progress", action="store_true", help="no progress bar")


def detector_from_args(args: argparse.Namespace, prog: str) -> Any:
    """The :class:`~acfd_deploy.pipeline.detector.Detector` the pipeline flags describe;
    without ``--model``, the bundled demo model (said on stderr)."""
    from acfd_deploy.pipeline.detector import Detector, DetectorConfig

    if args.model is None:
        from acfd_deploy.resources import demo_weights

        args.model = str(demo_weights())
        print(f"{prog}: no --model given: using the bundled demo model (acfd-tiny, trained on synthetic faces only)", file=sys.stderr)
    config = DetectorConfig(scales=scales_from_args(args), keep_ratio=args.keep_ratio, batch_size=args.batch)
    detector = Detector.from_model(args.model, config, device=args.device, backend=args.backend)
    graph = detector.runner.end2end
    if graph is not None and (config.scales, config.keep_ratio) != (tuple(graph.scales), graph.keep_ratio):
        sizes = " + ".join(f"{h}x{w}" for h, w in graph.scales) + (" keep-ratio" if graph.keep_ratio else "")
        print(f"{prog}: {args.model} is an end-to-end graph: it runs at its own scales ({sizes})", file=sys.stderr)
    return detector

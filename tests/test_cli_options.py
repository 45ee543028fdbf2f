"""Options dataclasses are built from parsed flags one way (cli.common.options_from_args):
each field from the flag of the same name, the few that differ named once. A flag that
reaches no field (and is not read by the command itself) is a flag that does nothing."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from acfd_deploy.bench.run import BenchOptions
from acfd_deploy.cli import bench, export, serve
from acfd_deploy.cli.common import options_from_args
from acfd_deploy.export.options import ExportOptions
from acfd_deploy.serve.app import ServeOptions

# flags every command has, and flags a command reads itself (output files, printing)
COMMON = {"help", "version", "debug"}
READ_BY_COMMAND = {
    "export": {"no_simplify", "k8s"},  # k8s: the folder, resolved by the command (beside the repository by default)
    "bench": {"model", "batch", "no_progress", "json", "plot"},
    # print_k8s and its k8s_* flags print manifests instead of serving (no ServeOptions)
    "serve": {"ms_test", "imgsz", "ready_timeout", "drain_timeout", "print_k8s", "k8s_image", "k8s_gpus"},
}


@pytest.mark.parametrize(
    ("name", "module", "cls"), [("export", export, ExportOptions), ("bench", bench, BenchOptions), ("serve", serve, ServeOptions)]
)
def test_every_flag_reaches_an_option(name: str, module: object, cls: type) -> None:
    parser = module.build_parser()  # type: ignore[attr-defined]
    dests = {a.dest for a in parser._actions}
    fields = {f.name for f in dataclasses.fields(cls)}
    orphans = dests - fields - COMMON - READ_BY_COMMAND[name]
    assert not orphans, f"acfd {name} flags that set no {cls.__name__} field: {sorted(orphans)}"


def test_options_from_args_takes_fields_by_name_and_the_overrides() -> None:
    args = export.build_parser().parse_args(["--workspace", "2", "--no-simplify", "--fp16", "--out", "x", "--imgsz", "320"])
    opts = options_from_args(ExportOptions, args, simplify=not args.no_simplify)
    assert (opts.workspace, opts.simplify, opts.fp16, opts.out, opts.imgsz) == (2.0, False, True, Path("x"), (320, 320))
    assert (opts.int8, opts.parity_images) == (False, ExportOptions().parity_images)  # no flag: the default
    with pytest.raises(TypeError, match="no field"):
        options_from_args(ExportOptions, args, simplfy=False)

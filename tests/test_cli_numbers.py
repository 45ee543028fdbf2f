"""Every number flag of every command goes through the one checked parser
(``acfd_deploy.cli.common.number``): nan and inf are refused with exit 2 and a line that
names the flag, and no flag is left with a bare ``type=int`` / ``type=float``."""

from __future__ import annotations

import argparse
import importlib

import pytest

from acfd_deploy.cli.main import COMMANDS


def _parsers() -> list[tuple[str, argparse.ArgumentParser]]:
    found = []
    for name, (module_name, _) in COMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:  # an optional command's dependency
            pytest.skip(f"acfd {name} needs {exc.name}")
        found.append((name, module.build_parser(f"acfd {name}")))
    return found


def _number_flags() -> list[tuple[str, argparse.ArgumentParser, str, int]]:
    """``(command, parser, flag names, values it takes)`` of every number flag."""
    return [
        (name, parser, "/".join(action.option_strings), action.nargs if isinstance(action.nargs, int) else 1)
        for name, parser in _parsers()
        for action in parser._actions
        if action.option_strings and hasattr(action.type, "number_kind")
    ]


def test_no_number_flag_has_a_bare_type() -> None:
    bare = [
        f"acfd {name} {action.option_strings[-1]} (type={action.type.__name__})"  # type: ignore[union-attr]
        for name, parser in _parsers()
        for action in parser._actions
        if action.type in (int, float)
    ]
    assert not bare, f"number flags that accept nan/inf or print argparse's own message: {bare}"


def test_every_command_has_number_flags_found() -> None:
    """The walk sees what it should (it would pass vacuously on no flags at all)."""
    flags = {(name, flag) for name, _, flag, _ in _number_flags()}
    for expected in [("export", "--workspace"), ("bench", "--budget-ms"), ("bench", "--max-regression"), ("bench", "--min-time")]:
        assert expected in flags
    assert {name for name, _ in flags} == set(COMMANDS)  # every command takes a number somewhere


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_nan_and_inf_are_refused_by_every_number_flag(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    for name, parser, flag, count in _number_flags():
        option = flag.split("/")[-1]
        if count > 1 and value.startswith("-"):
            continue  # argparse reads a lone "-inf" as an option name, not as one of several values
        with pytest.raises(SystemExit) as exited:
            parser.parse_args([f"{option}={value}"] if count == 1 else [option, *[value] * count])
        err = capsys.readouterr().err
        assert exited.value.code == 2, (name, flag, value)
        assert f"argument {flag}" in err and value in err and len(err.strip().splitlines()) == 1, (name, flag, err)

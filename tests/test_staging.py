"""Replacing an output folder as one unit (acfd_deploy.staging): at every moment the target
holds one complete output, the old one or the new one (docs/design.md#crash-safety)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from acfd_deploy import staging
from acfd_deploy.errors import AcfdError
from acfd_deploy.staging import FolderBusyError, staged_folder
from tests.helpers import beside

MARKER = "result.json"


def _tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes (the folder's complete contents)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _fill(folder: Path, version: str) -> None:
    (folder / MARKER).write_text(f'{{"version": "{version}"}}')
    (folder / f"model-{version}.bin").write_bytes(version.encode() * 100)
    (folder / "sub").mkdir()
    (folder / "sub" / "nested.txt").write_text(version)


@pytest.fixture
def old(tmp_path: Path) -> Path:
    """A target holding a complete earlier output (version 1)."""
    target = tmp_path / "out"
    target.mkdir()
    _fill(target, "1")
    return target


def test_commit_replaces_the_whole_folder_with_the_new_version(old: Path) -> None:
    with staged_folder(old, MARKER, "test output") as stage:
        assert stage.path.parent == old.parent and stage.path.name.startswith(".out.staging-")
        assert (old.parent / ".out.lock").is_file()  # held while the run writes
        _fill(stage.path, "2")
        assert _tree(old)[MARKER] == b'{"version": "1"}'  # nothing visible before the commit
        assert stage.commit() == old.absolute()
    assert sorted(_tree(old)) == sorted([MARKER, "model-2.bin", "sub/nested.txt"])  # exactly version 2: no file of version 1 survives
    assert _tree(old)["sub/nested.txt"] == b"2"
    assert beside(old) == []  # no staging folder, no old copy, no lock file


def test_first_run_creates_the_target(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "out"
    with staged_folder(target, MARKER, "test output") as stage:
        _fill(stage.path, "1")
        stage.commit()
    assert _tree(target)[MARKER] == b'{"version": "1"}' and beside(target) == []


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()])
def test_an_error_inside_leaves_the_old_folder_byte_identical(old: Path, error: BaseException) -> None:
    before = _tree(old)
    with pytest.raises(type(error)), staged_folder(old, MARKER, "test output") as stage:
        _fill(stage.path, "2")
        raise error
    assert _tree(old) == before
    assert beside(old) == []
    with staged_folder(old, MARKER, "test output") as stage:  # the lock was released
        pass
    assert _tree(old) == before  # a run that never commits changes nothing


def test_commit_elsewhere_keeps_the_target(old: Path) -> None:
    """Where a failed export goes: a sibling, while the verified output stays."""
    before = _tree(old)
    failed = old.with_name("out.failed")
    with staged_folder(old, MARKER, "test output") as stage:
        _fill(stage.path, "2")
        assert stage.commit(failed) == failed
    assert _tree(old) == before and _tree(failed)[MARKER] == b'{"version": "2"}'
    assert beside(old) == []


def test_the_fallback_swap_without_renameat2(old: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def no_exchange(a: Path, b: Path) -> bool:
        calls.append((a, b))
        return False

    monkeypatch.setattr(staging, "_exchange", no_exchange)
    with staged_folder(old, MARKER, "test output") as stage:
        _fill(stage.path, "2")
        stage.commit()
    assert calls, "the fallback was not exercised"
    assert sorted(_tree(old)) == sorted([MARKER, "model-2.bin", "sub/nested.txt"])
    assert beside(old) == []


def test_a_second_run_on_the_same_target_is_refused_naming_the_holder(old: Path) -> None:
    before = _tree(old)
    with staged_folder(old, MARKER, "test output") as first:
        _fill(first.path, "2")
        # a second open file description on the lock file: flock refuses it even in one process
        with (
            pytest.raises(FolderBusyError, match=rf"--out .*out is being written by pid {os.getpid()} "),
            staged_folder(old, MARKER, "test output"),
        ):
            pytest.fail("a second writer got in")
        assert first.path.is_dir()  # the refused run touched nothing of the first one's
    assert _tree(old) == before


_HOLDER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from acfd_deploy.staging import staged_folder

    with staged_folder(sys.argv[1], "result.json", "test output") as stage:
        (stage.path / "result.json").write_text("half")
        print("holding", flush=True)
        sys.stdin.readline()  # until killed
    """
)


def test_another_process_holds_the_lock_then_is_killed(old: Path) -> None:
    """A run killed with SIGKILL runs no cleanup: its lock dies with it, its staging folder
    stays until the next run removes it, and the target is untouched."""
    before = _tree(old)
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(old)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=old.parent
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "holding"
        with pytest.raises(FolderBusyError, match=rf"being written by pid {proc.pid} "), staged_folder(old, MARKER, "test output"):
            pytest.fail("a second writer got in")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert any(name.startswith(f".out.staging-{proc.pid}-") for name in beside(old)), beside(old)
    assert _tree(old) == before
    with staged_folder(old, MARKER, "test output") as stage:
        assert [n for n in beside(old) if ".staging-" in n] == [stage.path.name]  # the killed run's leftovers are gone
    assert _tree(old) == before and beside(old) == []


def test_leftovers_of_killed_runs_are_removed(old: Path) -> None:
    before = _tree(old)
    for name in (".out.staging-123-deadbeef", ".out.old-cafebabe"):
        (old.parent / name).mkdir()
        (old.parent / name / MARKER).write_text("leftover")
    (old.parent / ".other.staging-1-x").mkdir()  # another target's: not ours to remove
    with staged_folder(old, MARKER, "test output"):
        pass
    assert beside(old) == [] and _tree(old) == before
    assert (old.parent / ".other.staging-1-x").is_dir()


def test_a_target_lost_between_the_two_renames_is_restored(tmp_path: Path) -> None:
    """Killed after ``target -> .target.old-*`` and before ``staging -> target`` in the
    fallback swap: the next run puts the old output back before anything else."""
    target = tmp_path / "out"
    moved = tmp_path / ".out.old-12345678"
    moved.mkdir()
    _fill(moved, "1")
    (tmp_path / ".out.staging-99-abcdef01").mkdir()  # the new output that never got swapped in
    with staged_folder(target, MARKER, "test output") as stage:
        assert _tree(target)[MARKER] == b'{"version": "1"}'  # restored before the run writes anything
        assert [n for n in beside(target) if n != ".out.lock"] == [stage.path.name]
    assert _tree(target)[MARKER] == b'{"version": "1"}' and beside(target) == []


def test_a_folder_that_is_not_this_commands_output_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mine = tmp_path / "photos"
    mine.mkdir()
    (mine / "holiday.jpg").write_bytes(b"precious")
    refused = f"holds files but no {MARKER}, so it is not an earlier test output"
    with pytest.raises(AcfdError, match=refused), staged_folder(mine, MARKER, "test output"):
        pytest.fail("entered")
    assert _tree(mine) == {"holiday.jpg": b"precious"} and beside(mine) == []
    empty = tmp_path / "empty"
    empty.mkdir()
    with staged_folder(empty, MARKER, "test output") as stage:  # an empty folder is fine
        _fill(stage.path, "1")
        stage.commit()
    assert MARKER in _tree(empty)
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(AcfdError, match="exists and is not a folder"), staged_folder(a_file, MARKER, "test output"):
        pytest.fail("entered")
    monkeypatch.chdir(mine)
    (mine / MARKER).write_text("{}")
    with pytest.raises(AcfdError, match="is the working folder or above it"), staged_folder(".", MARKER, "test output"):
        pytest.fail("entered")
    with pytest.raises(AcfdError, match="is the working folder or above it"), staged_folder(tmp_path, MARKER, "test output"):
        pytest.fail("entered")

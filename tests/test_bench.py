"""acfd-bench: statistics, the budget and regression decisions, and the command end to end."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch

import acfd_deploy
from acfd_deploy.bench.gate import SCHEMA_VERSION, check_baseline, check_budget
from acfd_deploy.bench.harness import schedule
from acfd_deploy.bench.stats import median_of_repeats, summarize
from acfd_deploy.bench.timing import TimingPolicy, measure
from acfd_deploy.cli.bench import batch_list, main
from acfd_deploy.errors import AcfdError


def test_summary_statistics_on_known_samples() -> None:
    samples = [0.010, 0.012, 0.011, 0.013, 0.100]  # one outlier
    s = summarize(samples, batch=4)
    assert s.count == 5 and s.min == 0.010
    assert s.p50 == pytest.approx(0.012)
    assert s.p90 == pytest.approx(np.percentile(samples, 90))
    assert s.per_image == pytest.approx(0.003) and s.images_per_second == pytest.approx(4 / 0.012)
    d = s.to_dict()
    assert d["p50_ms"] == pytest.approx(12.0) and d["per_image_ms"] == pytest.approx(3.0)
    assert median_of_repeats([5.0, 50.0, 5.2]) == 5.2, "one disturbed repeat must not move the figure"
    with pytest.raises(ValueError):
        summarize([])
    with pytest.raises(ValueError):
        summarize([0.1, float("nan")])


def test_measure_honours_the_policy() -> None:
    calls = []
    samples = measure(lambda: calls.append(1), TimingPolicy(warmup=2, min_iters=7, min_seconds=0.0))
    assert len(samples) == 7 and len(calls) == 9


def _row(ms: float, **kw: Any) -> dict[str, Any]:
    return {"artifact": "a.onnx", "backend": "onnxruntime", "precision": "fp32", "batch": 8, "input": "640x640", "per_image_ms": ms, **kw}


def _doc(rows: list[dict[str, Any]], ref: float | None = 10.0, machine: str = "gpu:H100") -> dict[str, Any]:
    return {"schema_version": SCHEMA_VERSION, "machine_class": machine, "reference_ms": ref, "results": rows}


def test_budget_both_ways() -> None:
    ok, over = check_budget([_row(49.9), _row(50.1, batch=16)], 50.0)
    assert ok.ok and not over.ok and "50.10 ms per image > budget 50 ms" in over.message
    assert check_budget([_row(1000.0)], None) == []


def test_regression_both_ways_and_reference_normalization() -> None:
    base = _doc([_row(2.0)])
    assert check_baseline(_doc([_row(2.1)]), base, 0.10)[0].ok  # +5%
    slow = check_baseline(_doc([_row(2.5)]), base, 0.10)[0]
    assert not slow.ok and "+25.0%" in slow.message
    # the whole machine is 25% slower today (the in-run reference too): not a regression
    assert check_baseline(_doc([_row(2.5)], ref=12.5), base, 0.10)[0].ok
    # without a reference on both sides, the absolute figure decides
    assert not check_baseline(_doc([_row(2.5)], ref=None), base, 0.10)[0].ok
    # a new artifact is reported, not failed; a parity that broke fails
    assert check_baseline(_doc([_row(9.0, batch=1)]), base, 0.10)[0].ok
    broke = check_baseline(_doc([_row(2.0, parity_ok=False)]), _doc([_row(2.0, parity_ok=True)]), 0.10)
    assert [f.ok for f in broke] == [True, False] and "parity" in broke[1].message


def test_baseline_of_another_schema_or_machine_is_bad_input() -> None:
    current = _doc([_row(2.0)])
    with pytest.raises(AcfdError, match="schema version 0"):
        check_baseline(current, {**_doc([_row(2.0)]), "schema_version": 0}, 0.1)
    with pytest.raises(AcfdError, match="measured on 'cpu:Xeon:2'"):
        check_baseline(current, _doc([_row(2.0)], machine="cpu:Xeon:2"), 0.1)


def test_batch_list_parsing() -> None:
    assert batch_list("1,8,16") == (1, 8, 16)
    for bad in ("1,x", "0,2", ""):
        with pytest.raises(Exception, match="batch"):
            batch_list(bad)


@pytest.fixture(scope="module")
def artifacts(tiny_model: torch.nn.Module, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from acfd_deploy.export.onnx_export import export_onnx

    root = tmp_path_factory.mktemp("bench")
    weights = acfd_deploy.save_checkpoint(tiny_model, root / "tiny.pth")
    proto = export_onnx(acfd_deploy.reparameterize(copy.deepcopy(tiny_model)))
    entry = proto.metadata_props.add()
    entry.key, entry.value = "config", json.dumps(tiny_model.config.to_dict())  # as acfd-export stores it
    onnx_path = root / "tiny.onnx"
    onnx.save(proto, str(onnx_path))
    return weights, onnx_path


FAST = ["--repeats", "2", "--min-time", "0", "--warmup", "1", "--imgsz", "160", "192"]


def test_command_end_to_end(artifacts: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    weights, onnx_path = artifacts
    out_json, out_png = tmp_path / "bench.json", tmp_path / "bench.png"
    rc = main(
        ["--model", str(weights), str(onnx_path), "--batch", "1,2", "--parity", "--json", str(out_json), "--plot", str(out_png), *FAST]
    )
    printed = capsys.readouterr().out
    assert rc == 0, printed
    doc = json.loads(out_json.read_text())
    assert doc["schema_version"] == SCHEMA_VERSION and doc["environment"]["cpu"] and doc["reference_ms"] > 0
    arts = {(r["artifact"], r["batch"]) for r in doc["results"]}
    assert arts == {(a, b) for a in ("tiny.pth (training graph)", "tiny.pth (folded)", "tiny.onnx") for b in (1, 2)}
    for r in doc["results"]:
        assert r["p50_ms"] > 0 and r["count"] >= 5 * 2 and len(r["repeat_per_image_ms"]) == 2
        assert r["parity_ok"] is True and r["parity"]["score_abs"] <= 1e-4
        assert 0 < r["efficiency_vs_matmul"] < 10
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "tiny.onnx" in printed and "pass" in printed

    # a baseline from this very run passes; one that claims 100x faster fails with exit 1
    assert main(["--model", str(onnx_path), "--baseline", str(out_json), "--max-regression", "3", *FAST]) == 0
    fast = json.loads(out_json.read_text())
    for r in fast["results"]:
        r["per_image_ms"] /= 100
    (tmp_path / "fast.json").write_text(json.dumps(fast))
    capsys.readouterr()
    assert main(["--model", str(onnx_path), "--baseline", str(tmp_path / "fast.json"), *FAST]) == 1
    captured = capsys.readouterr()
    assert "baseline FAIL" in captured.out  # the report says which row regressed
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("acfd-bench: FAILED: ") and "limit +" in err[0], err


def test_schedule_orders() -> None:
    # sequential: every repeat of a workload back to back; interleaved: rounds over workloads
    assert schedule(2, 3, interleave=False) == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    assert schedule(2, 3, interleave=True) == [(0, 0), (1, 0), (0, 1), (1, 1), (0, 2), (1, 2)]
    for interleave in (False, True):
        pairs = schedule(3, 4, interleave)
        assert sorted(pairs) == [(w, r) for w in range(3) for r in range(4)]  # each once
        for w in range(3):  # a workload's repeats in order
            assert [r for ww, r in pairs if ww == w] == [0, 1, 2, 3]


def test_interleaved_rounds_time_every_artifact_in_each_round(
    artifacts: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import acfd_deploy.bench.harness as harness

    weights, onnx_path = artifacts
    order: list[tuple[str, int]] = []
    real = harness.time_repeat

    def spy(work: Any, plan: Any, track_memory: bool = True) -> None:
        assert track_memory is False  # all artifacts are loaded: a process peak would mix them
        order.append((work.target.artifact, work.batch))
        real(work, plan, track_memory)

    monkeypatch.setattr("acfd_deploy.bench.run.time_repeat", spy)
    out_json = tmp_path / "bench.json"
    args = ["--model", str(weights), str(onnx_path), "--batch", "1,2", "--interleave", "--parity", "--json", str(out_json), *FAST]
    assert main(args) == 0
    doc = json.loads(out_json.read_text())
    assert doc["plan"]["schedule"] == "interleaved"
    works = sorted({(r["artifact"], r["batch"]) for r in doc["results"]})
    assert len(works) == 6 and len(order) == 6 * 2
    assert sorted(order[:6]) == works and sorted(order[6:]) == works  # round 1, then round 2
    for r in doc["results"]:
        assert len(r["repeat_per_image_ms"]) == 2 and r["p50_ms"] > 0 and r["peak_host_mb"] is None
        assert r["parity_ok"] is True


def test_ms_test_budget_decides_the_exit_code(artifacts: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    _, onnx_path = artifacts
    args = ["--model", str(onnx_path), "--ms-test", "--source", "400x300", "--repeats", "1", "--min-time", "0", "--warmup", "0"]
    assert main([*args, "--budget-ms", "100000"]) == 0
    assert main([*args, "--budget-ms", "0.001"]) == 1
    captured = capsys.readouterr()
    assert "over budget" in captured.out
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("acfd-bench: FAILED: ") and "over budget" in err[0], err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "missing.onnx"], "artifact not found"),
        (["--model", "x.onnx", "--batch", "1,two"], "batch"),
        (["--export-dir", "."], "no export.json"),
        (["--model", "{onnx}", "--baseline", "nope.json"], "baseline not found"),
        (["--model", "{onnx}", "--cuda-graphs", "--device", "cpu"], "needs a CUDA device"),
    ],
)
def test_bad_input_exits_2(args: list[str], message: str, artifacts: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    args = [a.replace("{onnx}", str(artifacts[1])) for a in args]
    if "two" in " ".join(args):  # a flag argparse refuses: it exits on its own, with code 2
        with pytest.raises(SystemExit) as exited:
            main(args)
        rc = exited.value.code
    else:
        rc = main(args)
    assert rc == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_a_backend_with_batch_options_gets_a_runner_per_batch() -> None:
    """OpenVINO runs batches above one in throughput mode in acfd-detect; acfd-bench times
    the same thing, so it loads one runner per batch size for it (and one for all batch
    sizes where the runner does not depend on the batch)."""
    from acfd_deploy.bench.harness import BenchPlan
    from acfd_deploy.bench.run import _runs
    from acfd_deploy.bench.targets import Target
    from acfd_deploy.runtime.base import Runner

    def never(batch: int) -> Runner:
        raise AssertionError("listing runs loads nothing")

    openvino = Target("m.xml", "openvino", "fp32", None, never)
    onnx_rt = Target("m.onnx", "onnxruntime", "fp32", None, never)
    runs = _runs([openvino, onnx_rt], BenchPlan(batches=(1, 4)))
    assert [(t.backend, p.batches) for t, p in runs] == [("openvino", (1,)), ("openvino", (4,)), ("onnxruntime", (1, 4))]
    assert openvino.per_batch and not onnx_rt.per_batch


def test_the_speed_baseline_is_the_registry_s_baseline_role(monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import replace

    from acfd_deploy.bench.report import speedups
    from acfd_deploy.runtime import registry

    rows = [
        {"backend": "onnxruntime", "precision": "fp32", "batch": 1, "input": "640x640", "per_image_ms": 10.0},
        {"backend": "openvino", "precision": "fp32", "batch": 1, "input": "640x640", "per_image_ms": 5.0},
        {"backend": "onnxruntime", "precision": "int8", "batch": 1, "input": "640x640", "per_image_ms": 4.0},
        {"backend": "onnxruntime", "precision": "int8", "batch": 8, "input": "640x640", "per_image_ms": 2.0},
    ]
    assert speedups(rows) == [1.0, 2.0, 2.5, None]  # no fp32 baseline row at batch 8
    monkeypatch.setattr(registry, "_BACKENDS", dict(registry._BACKENDS))
    registry.register(replace(registry.backend_named("onnxruntime"), baseline=False))
    registry.register(replace(registry.backend_named("openvino"), baseline=True))
    assert speedups(rows) == [0.5, 1.0, 1.25, None]

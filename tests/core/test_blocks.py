"""The typed JSON blocks of a run (analytic header, point telemetry, attention entries):
what the producers write is what the declarations say, a file round-trips unchanged,
and a damaged block is refused naming the key."""

from __future__ import annotations

import json
import typing
from pathlib import Path

import pytest

from ctxscope.core.attention.config import CaptureConfig
from ctxscope.core.blocks import AnalyticBlock, AnalyticRow, AttentionEntry, DevicePeak, TelemetrySummary, check_block
from ctxscope.core.errors import RunFileError
from ctxscope.core.results import RunResult
from ctxscope.core.serialize import load_run, loads_run, run_to_dict, write_run
from ctxscope.core.jobs.sweep import run_sweep
from tests.conftest import drain, fast_config


@pytest.fixture(scope="module")
def run(loaded_llama) -> RunResult:
    """A real sweep with every block: analytic header, telemetry per point, attention."""
    cfg = fast_config((16, 32), attention=CaptureConfig(tiles=8, layers=(0, -1), span=(2, 5)))
    return drain(run_sweep(loaded_llama, cfg))[1]


def _declared(kind: type) -> set[str]:
    return set(typing.get_type_hints(kind))


def test_producers_write_only_declared_keys(run: RunResult) -> None:
    # A key a producer adds without declaring it would escape the checker and the loader.
    analytic = run.header.analytic
    assert analytic is not None and "error" not in analytic
    assert set(analytic) <= _declared(AnalyticBlock)
    assert all(set(row) <= _declared(AnalyticRow) for row in analytic["rows"])
    assert analytic["peak"] is None or set(analytic["peak"]) == _declared(DevicePeak)
    summaries = [p.telemetry for p in run.points if p.telemetry is not None]
    assert summaries and all(set(t) == _declared(TelemetrySummary) for t in summaries)
    assert len(run.attention) == 4  # 2 lengths × 2 layers
    assert all(set(e) <= _declared(AttentionEntry) for e in run.attention)
    assert {e["status"] for e in run.attention} == {"ok"} and run.attention[0]["span"] == [2, 5]
    for kind, block in [(AnalyticBlock, analytic), *[(TelemetrySummary, t) for t in summaries],
                        *[(AttentionEntry, e) for e in run.attention]]:
        check_block(kind, json.loads(json.dumps(block)), "block")  # as a file would hold it


def test_blocks_round_trip_unchanged(run: RunResult, tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    write_run(run, path)
    again = load_run(path)
    assert again == run
    before, after = run_to_dict(run), run_to_dict(again)
    assert after["analytic"] == before["analytic"] and after["attention"] == before["attention"]
    assert [p["telemetry"] for p in after["points"]] == [p["telemetry"] for p in before["points"]]
    # The JSON objects are copies: editing them leaves the frozen run as it was.
    before["attention"][0]["layer"] = 99
    before["analytic"]["rows"].clear()
    before["points"][0]["telemetry"]["samples"] = -1
    assert run_to_dict(run) == after


def test_older_and_newer_files_load(run: RunResult) -> None:
    data = run_to_dict(run)
    for row in data["analytic"]["rows"]:  # written before the storage and traffic figures
        for key in ("prefill_kv_storage_bytes", "decode_kv_storage_bytes", "decode_traffic_bytes"):
            del row[key]
    del data["points"][0]["telemetry"]["cpu_other_cores"]  # before interference was recorded
    data["attention"][0].pop("status")  # very early captures wrote none
    data["points"][1]["telemetry"]["fan_speed_percent"] = 40  # a newer ctxscope's key: ignored, kept
    loaded = loads_run(json.dumps(data))
    assert loaded.points[1].telemetry is not None and loaded.points[1].telemetry.get("fan_speed_percent") == 40
    assert "decode_traffic_bytes" not in loaded.header.analytic["rows"][0]


@pytest.mark.parametrize(("mutation", "message"), [
    (lambda d: d["points"][0]["telemetry"].update(power_mean_w="300 W"),
     r"points\[0\]\.telemetry\.power_mean_w: expected a number, not a string"),
    (lambda d: d["points"][0]["telemetry"].update(samples=True), r"telemetry\.samples: expected an integer"),
    (lambda d: d["points"][0].update(telemetry=[1, 2]), r"points\[0\]\.telemetry: expected an object, not a list"),
    (lambda d: d["analytic"].update(rows="all"), r"analytic\.rows: expected a list, not a string"),
    (lambda d: d["analytic"]["rows"][1].pop("length"), r"analytic\.rows\[1\]\.length: missing"),
    (lambda d: d["analytic"]["rows"][0].update(kv_cache_bytes=1.5), r"analytic\.rows\[0\]\.kv_cache_bytes: expected an integer"),
    (lambda d: d["analytic"].update(peak={"name": "x", "flops": {"bfloat16": "fast"}, "bytes_per_s": 1.0, "source": "t"}),
     r"analytic\.peak\.flops\.bfloat16: expected a number"),
    (lambda d: d["analytic"].update(notes=[None]), r"analytic\.notes\[0\]: expected a string, not null"),
    (lambda d: d["attention"][0]["stats"].update(entropy=["high"]), r"attention\[0\]\.stats\.entropy\[0\]: expected a number"),
    (lambda d: d["attention"][1].update(array=7), r"attention\[1\]\.array: expected a string"),
    (lambda d: d["attention"][0].update(span="2-5"), r"attention\[0\]\.span: expected a list"),
    (lambda d: d["attention"].append("entry"), r"attention\[4\]: expected an object, not a string"),
    (lambda d: d["points"][0]["telemetry"].update(fan="<b>"), r"telemetry: expected an object of numbers"),
])
def test_damaged_blocks_are_refused_naming_the_key(run: RunResult, mutation, message: str) -> None:
    data = run_to_dict(run)
    mutation(data)
    with pytest.raises(RunFileError, match=message):
        loads_run(json.dumps(data))


def test_a_declaration_without_a_json_check_is_a_bug_not_a_pass() -> None:
    class Odd(typing.TypedDict):
        when: complex

    with pytest.raises(TypeError, match="no JSON check"):
        check_block(Odd, {"when": 1}, "odd")

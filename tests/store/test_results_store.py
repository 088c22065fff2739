"""Run files (schema, validation, no code execution), CSV, and the SQLite history."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from pathlib import Path

import pytest

from ctxscope.core.errors import BadInputError, RunFileError
from ctxscope.core.results import SCHEMA, RunResult
from ctxscope.core.serialize import dumps_run, load_run, loads_run, run_to_dict, write_run
from ctxscope.core.jobs.sweep import run_sweep
from ctxscope.report.tabular import COLUMNS, run_to_csv
from ctxscope.store import RunStore
from ctxscope.store.errors import HistoryDamaged
from ctxscope.store.history import open_history
from ctxscope.store.opening import integrity_problem
from tests.conftest import drain, fast_config


@pytest.fixture(scope="module")
def run(loaded_llama) -> RunResult:
    return drain(run_sweep(loaded_llama, fast_config((16, 32))))[1]


def test_json_roundtrip_is_exact(run: RunResult, tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    write_run(run, path)
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["schema"] == SCHEMA and data["status"] == "complete"
    for key in ("source", "architecture", "params", "random_weights", "num_layers", "hidden_size", "num_heads",
                "num_kv_heads", "head_dim"):
        assert key in data["model"]
    point = data["points"][0]
    assert set(point["latency_ms"]) >= {"median", "p10", "p90", "mean", "std", "n", "samples"}
    assert set(point["memory"]) >= {"peak_allocated_bytes", "peak_reserved_bytes", "weights_bytes", "kv_cache_bytes",
                                    "activation_bytes", "device_used_bytes"}
    assert load_run(path) == run


def test_csv_has_one_row_per_point(run: RunResult) -> None:
    rows = list(csv.DictReader(io.StringIO(run_to_csv(run))))
    assert len(rows) == len(run.points) and tuple(rows[0]) == COLUMNS
    assert float(rows[0]["latency_median_ms"]) == pytest.approx(run.points[0].latency_ms.median)
    assert int(rows[0]["kv_cache_bytes"]) == run.points[0].memory.kv_cache_bytes


def test_csv_neutralises_formulas(run: RunResult) -> None:
    evil = replace(run, header=replace(run.header, model=replace(run.header.model, source="=HYPERLINK(\"x\")")))
    rows = list(csv.DictReader(io.StringIO(run_to_csv(evil))))
    assert rows[0]["model"] == "'=HYPERLINK(\"x\")" and rows[0]["error"] == "" 


def _mutate(run: RunResult, fn) -> str:
    data = run_to_dict(run)
    fn(data)
    return json.dumps(data)


@pytest.mark.parametrize(("mutation", "message"), [
    (lambda d: d.update(schema="ctxscope.run/99"), "unknown schema"),
    (lambda d: d.pop("model"), "model"),
    (lambda d: d["model"].update(params="many"), "params"),
    (lambda d: d["points"][0].update(status="great"), "status"),
    (lambda d: d["points"][0]["latency_ms"].update(samples=["1", 2]), "samples"),
    (lambda d: d["points"][0].update(length=-4), "length"),
    (lambda d: d.update(points={"a": 1}), "points"),
    (lambda d: d.update(status=None), "status"),
    (lambda d: d["settings"].update(lengths="16,32"), "lengths"),
    (lambda d: d.update(id="../../outside"), "id: expected"),  # ids name files: no path tricks
    (lambda d: d.update(id="/etc/x"), "id: expected"),
    (lambda d: d.update(id=""), "id: expected"),
    (lambda d: d.update(analytic=[1]), "analytic"),
    (lambda d: d["points"][0].update(telemetry={"x": "<script>"}), "telemetry"),
])
def test_bad_run_files_get_clear_errors(run: RunResult, mutation, message: str) -> None:
    with pytest.raises(RunFileError, match=message):
        loads_run(_mutate(run, mutation))


def test_unreadable_files(tmp_path: Path) -> None:
    for content, message in ((b"{", "not valid JSON"), (b"[1, 2]", "not a ctxscope run"), (b"\xff\xfe\x00", "UTF-8"),
                             (b"\x80\x04\x95pickle", "UTF-8"), (b"[" * 100000, "not valid JSON")):
        path = tmp_path / "bad.json"
        path.write_bytes(content)
        with pytest.raises(RunFileError, match=message):
            load_run(path)
    with pytest.raises(RunFileError, match="no such file"):
        load_run(tmp_path / "missing.json")
    with pytest.raises(RunFileError, match="directory"):
        load_run(tmp_path)


def test_unknown_fields_are_ignored_and_stats_rederived(run: RunResult) -> None:
    text = _mutate(run, lambda d: (d.update(future_field=1), d["points"][0]["latency_ms"].update(median=-1.0)))
    loaded = loads_run(text)
    assert loaded.points[0].latency_ms.median == run.points[0].latency_ms.median


def test_store_roundtrip_and_listing(run: RunResult, tmp_path: Path) -> None:
    with RunStore(tmp_path / "runs.sqlite3") as store:
        store.save_run(run)
        assert store.get_run(run.id) == run
        assert store.get_run(run.id[:12]) == run  # unique prefix
        [summary] = store.list_runs()
        assert summary.points_ok == summary.points_total == len(run.points) and summary.status == "complete"
        assert integrity_problem(store.conn) is None
        store.delete_run(run.id)
        assert store.list_runs() == []
        with pytest.raises(BadInputError, match="no run"):
            store.get_run(run.id)


def test_store_points_arrive_one_by_one_and_stale_runs_read_interrupted(run: RunResult, tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite3"
    with RunStore(path) as writer:
        writer.create_run(run.header)
        writer.add_point(run.id, 0, run.points[0])
        with RunStore(path) as reader:  # another connection sees the committed point at once
            partial = reader.get_run(run.id)
            assert partial.points == run.points[:1] and partial.status == "running"
        writer.conn.execute("UPDATE runs SET pid = 999999999")
        assert writer.get_run(run.id).status == "interrupted"


def test_ambiguous_prefix(run: RunResult, tmp_path: Path) -> None:
    with RunStore(tmp_path / "runs.sqlite3") as store:
        store.save_run(run)
        store.save_run(replace(run, header=replace(run.header, id=run.id + "x")))
        with pytest.raises(BadInputError, match="ambiguous"):
            store.resolve(run.id[:8])
        assert store.resolve(run.id) == run.id
        for i in range(7):  # nine matches: five shown, and the message says four more exist
            store.save_run(replace(run, header=replace(run.header, id=f"{run.id}{i}")))
        with pytest.raises(BadInputError) as err:
            store.resolve(run.id[:8])
        assert "9 runs match" in str(err.value) and str(err.value).count(run.id[:8]) == 6
        assert "and 4 more" in str(err.value)


def test_a_file_that_is_not_sqlite_is_moved_aside_not_written(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite3"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(HistoryDamaged):  # a connection alone never writes into it …
        RunStore(path)
    assert path.read_bytes() == b"this is not sqlite" * 100
    with open_history(path) as store:  # … the history's opening moves it aside first
        assert store.list_runs() == []
        [moved, recovered] = store.notices
    [aside] = tmp_path.glob("runs-damaged-*.sqlite3")
    assert aside.read_bytes() == b"this is not sqlite" * 100  # kept as it was, never deleted
    assert f"moved it to {aside}" in moved and "nothing recovered" in recovered


def test_json_text_is_utf8_and_finite(run: RunResult) -> None:
    text = dumps_run(replace(run, header=replace(run.header, model=replace(run.header.model, source="modèle/日本"))))
    assert "modèle/日本" in text and "NaN" not in text

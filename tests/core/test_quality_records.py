"""Quality results as data: the run file round trip and its validation, the history
(schema 3, migrated from 2), and the arithmetic of intervals, effective context and knee."""

from __future__ import annotations

import json
import math
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from ctxscope.core.errors import RunFileError
from ctxscope.core.quality.effective import Effective, by_length, effective, loss_row, loss_rows, t95, verdict_of
from ctxscope.core.quality.records import LossPoint, NeedleTrial, QualityResult
from ctxscope.core.results import RunResult
from ctxscope.core.serialize import dumps_run, loads_run, run_to_dict
from ctxscope.report.tradeoff import knee

SETTINGS = {"kinds": ["loss", "needle"], "text": "pride-and-prejudice", "window_starts": [100, 200], "target_tokens": 8,
            "windows": 2, "depths": [0.0, 100.0], "seeds": 1, "threshold": 0.9, "epsilon": 0.01, "claimed": 8192,
            "fits": None, "text_tokens": 1000}
QUALITY = QualityResult(
    loss=(LossPoint(64, "ok", window_nll=(3.0, 3.2), seconds=0.5), LossPoint(128, "oom", "out of memory")),
    needle=(NeedleTrial("adjacent", 30, None, 0, "ok", key="12345", found=True, key_logprob=-0.5, answer="12345",
                        position=0),
            NeedleTrial("grid", 128, 50.0, 0, "ok", key="54321", found=False, key_logprob=-9.0, answer="5", position=60),
            NeedleTrial("no-key", 128, None, 0, "skipped", error="beyond", key="11111")))


def _run() -> RunResult:
    from ctxscope.core.results import Environment, ModelInfo, RunHeader, Settings

    model = ModelInfo("demo:x", "LlamaForCausalLM", "llama", 1, False, 1, 8, 1, 1, 8, 100, 8192, True)
    settings = Settings("cpu", "float32", "sdpa", 1, ("prefill",), (64, 128), 1, 0, 1, 1, 1.0, 0.05, False, False,
                        quality=SETTINGS)
    env = Environment(None, None, None, None, "2", "5", "0", "linux", "cpu")
    return RunResult(RunHeader("r1", "2026-11-28T00:00:00+00:00", model, settings, env), "complete", quality=QUALITY)


def test_a_run_from_before_tasks_loads_its_trials_as_the_single_task() -> None:
    data = json.loads(dumps_run(_run()))
    for trial in data["quality"]["needle"]:
        for name in ("task", "expected", "distractors", "recall", "false_hits", "positions"):
            del trial[name]
    again = loads_run(json.dumps(data))
    assert {t.task for t in again.quality.needle} == {"single"} and again.quality == QUALITY


def test_run_file_round_trip_and_derived_figures() -> None:
    run = _run()
    data = run_to_dict(run)
    assert data["settings"]["quality"]["window_starts"] == [100, 200]
    derived = data["quality"]["derived"]
    assert derived["loss"][0]["mean_nll"] == 3.1 and derived["loss"][1]["status"] == "oom"
    assert derived["controls"]["adjacent"]["rate"] == 1.0 and derived["effective"]["claimed"] == 8192
    again = loads_run(dumps_run(run))
    assert again.quality == QUALITY and again.header.settings.quality == SETTINGS


@pytest.mark.parametrize(("path", "value", "message"), [
    (("quality", "loss", 0, "status"), "fine", "quality.loss[0].status"),
    (("quality", "loss", 0, "window_nll"), ["3.0"], "window_nll: expected a list of numbers"),
    (("quality", "loss", 0, "context"), -4, "context: expected a positive integer"),
    (("quality", "needle", 0, "kind"), "haystack", "quality.needle[0].kind"),
    (("quality", "needle", 1, "depth"), 150, "expected a percentage"),
    (("quality", "needle", 1, "found"), "yes", "found: wrong type"),
    (("quality", "needle", 1, "task"), "haystack", "quality.needle[1].task"),
    (("quality", "needle", 1, "expected"), "1234567", "expected: expected a list of strings"),
    (("quality", "needle", 1, "recall"), 1.5, "recall: expected a share"),
    (("settings", "quality", "tasks"), ["single", "rag"], "settings.quality.tasks"),
    (("quality", "loss"), {"a": 1}, "loss and needle must be lists"),
    (("settings", "quality", "window_starts"), "0-100", "window_starts: expected a list of numbers"),
    (("settings", "quality"), [1, 2], "settings.quality: expected an object"),
])
def test_bad_quality_data_is_a_clear_error(path: tuple, value: object, message: str) -> None:
    data = json.loads(dumps_run(_run()))
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(RunFileError, match=message.replace("[", r"\[").replace("]", r"\]")):
        loads_run(json.dumps(data))


def test_history_stores_quality_and_migrates_schema_2(tmp_path: Path) -> None:
    from ctxscope.store import RunStore

    path = tmp_path / "runs.sqlite3"
    with sqlite3.connect(path) as conn:  # a version-2 history, as ctxscope wrote it before quality
        conn.executescript("""CREATE TABLE runs (id TEXT PRIMARY KEY, created TEXT NOT NULL, status TEXT NOT NULL,
            finished TEXT, pid INTEGER, model_source TEXT NOT NULL, architecture TEXT NOT NULL, device TEXT NOT NULL,
            dtype TEXT NOT NULL, attn TEXT NOT NULL, batch_size INTEGER NOT NULL, header_json TEXT NOT NULL,
            attention_json TEXT, pid_started REAL);
            CREATE TABLE points (run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE, seq INTEGER NOT NULL,
            mode TEXT NOT NULL, length INTEGER NOT NULL, status TEXT NOT NULL, point_json TEXT NOT NULL,
            PRIMARY KEY (run_id, seq)); PRAGMA user_version=2;""")
    with RunStore(path, readonly=True) as reader:  # read as it is: no quality column yet
        assert reader.list_runs() == []
    run = _run()
    with RunStore(path) as store:
        store.create_run(run.header)
        store.add_quality(run.id, list(QUALITY.loss))
        store.add_quality(run.id, list(QUALITY.needle))
        assert store.get_run(run.id).quality == QUALITY
        store.save_run(replace(run, header=replace(run.header, id="r2")))
        assert store.get_run("r2").quality == QUALITY
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] >= 3


def test_interval_is_students_t_over_windows() -> None:
    values = (3.0, 3.2, 3.1, 3.5)
    row = loss_row(LossPoint(512, "ok", window_nll=values))
    mean = sum(values) / 4
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / 3)
    assert row.mean == pytest.approx(mean) and row.high - row.mean == pytest.approx(3.182 * sd / 2)
    assert row.perplexity == pytest.approx(math.exp(mean)) and t95(1) == 12.706 and t95(500) == 1.96
    assert loss_row(LossPoint(64, "ok", window_nll=(3.0,))).low is None


def test_effective_context_rules() -> None:
    # Each window gains the same from context: the paired intervals are tight, so the
    # steps are decided — 0.10 and 0.05 per doubling fall, then nothing changes.
    means = ((256, 3.40), (512, 3.30), (1024, 3.25), (2048, 3.25), (4096, 3.25))
    loss = [LossPoint(c, "ok", window_nll=(v - 0.2, v + 0.001 * (c > 1024), v + 0.2)) for c, v in means]
    eff = effective(loss, [], claimed=8192, fits=None, threshold=0.9, epsilon=0.01)
    assert eff.loss == 1024 and eff.loss_verdict.kind == "flat"
    assert eff.line() == ("claimed 8,192 · fits: not measured · effective: loss falls until 1,024, flat from 1,024 to "
                          "4,096 (within ±0.01 nats/token, TOST)")
    # A larger ε: the 0.05 step is within it, the 0.10 one is not.
    assert effective(loss, [], claimed=None, fits=None, threshold=0.9, epsilon=0.06).loss == 512
    trials = [NeedleTrial("grid", n, 50.0, s, "ok", key="1", found=s < hits) for n, hits in
              ((512, 40), (1024, 40), (2048, 30), (4096, 40)) for s in range(40)]
    assert verdict_of(by_length(trials), 0.9).effective == 1024  # stays ≥ 90 % up to 1024, not again at 4096
    assert verdict_of(by_length(trials), 0.5).effective == 4096
    loose = effective([], trials, claimed=None, fits=None, threshold=0.5, epsilon=0.01)
    assert loose.line() == "claimed: not stated · fits: not measured · effective: retrieval ≥ 50% up to 4,096 " \
                           "(the longest measured)"
    eff = effective([], trials, claimed=8192, fits=None, threshold=0.9, epsilon=0.01)
    assert eff.line() == ("claimed 8,192 · fits: not measured · effective: retrieval ≥ 90% up to 1,024; below 90% "
                          "at 2,048 (30/40, 95 % 60%–86%)")
    line = Effective(8192, 6000, None, 2048, 0.9, 0.01, True, True, retrieval_text="r", loss_text="l").line()
    assert line == "claimed 8,192 · fits 6,000 · effective: r; l"


def test_knee_is_where_benefit_stops_paying() -> None:
    lengths = [256, 512, 1024, 2048, 4096]
    saved = [0.0, 0.10, 0.15, 0.16, 0.165]  # loss saved since 256: flattens after 1024
    cost = [1.0, 2.0, 4.0, 8.0, 16.0]  # prefill time doubles with every doubling
    assert knee(lengths, saved, cost) == 1024
    assert knee(lengths[:2], saved[:2], cost[:2]) is None


def test_saving_is_paired_by_window() -> None:
    from ctxscope.core.quality.effective import savings

    # Windows differ by a whole nat; each gains exactly 0.05 from more context.
    points = [LossPoint(256, "ok", window_nll=(2.0, 3.0, 4.0)), LossPoint(512, "ok", window_nll=(1.95, 2.95, 3.95)),
              LossPoint(1024, "oom", "out of memory")]
    [saved] = savings(points)
    assert saved.context == 512 and saved.mean == pytest.approx(0.05) and saved.high - saved.low < 1e-9
    assert loss_rows(points)[1].high - loss_rows(points)[1].low > 4  # the unpaired interval says nothing

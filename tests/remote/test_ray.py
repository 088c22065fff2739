"""Matrices on a real local Ray cluster (2 CPUs on 127.0.0.1): a 2 × 2 matrix of tiny
models through the CLI, a worker killed mid-cell, cancel; and without Ray, one line."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading

import pytest

from ctxscope.cli import main
from ctxscope.core.events import PointResult, SweepStarted
from ctxscope.core.jobs.job import Job
from ctxscope.core.jobs.matrix import CellFinished
from ctxscope.core.spec import ModelSpec
from tests.conftest import fast_config

FAST = ["--min-repeats", "2", "--max-repeats", "3", "--budget", "0.05"]


@pytest.fixture(scope="module")
def cluster() -> object:
    ray = pytest.importorskip("ray", reason='Ray is not installed (pip install "ray[client]>=2.60")')
    import logging

    from ctxscope.remote import ray_cluster

    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    yield ray
    ray.shutdown()
    ray_cluster._connected = None


def drive(gen, on_event=lambda event: None):
    events = []
    while True:
        try:
            event = next(gen)
        except StopIteration as done:
            return events, done.value
        events.append(event)
        on_event(event)


def test_a_2x2_matrix_runs_on_the_cluster(capsys, cluster, tiny_config_files, tmp_path) -> None:
    models = [str(tiny_config_files["llama"]), str(tiny_config_files["gpt2"])]
    code = main(["sweep", *models, "--dtype", "float32,bfloat16", "--lengths", "16,32", "--cluster", "auto",
                 "--out", str(tmp_path), *FAST])
    out, err = capsys.readouterr()
    assert code == 0, err
    runs = [json.loads(p.read_text()) for p in sorted(tmp_path.glob("*.json"))]
    assert sorted((r["model"]["architecture"], r["settings"]["dtype"]) for r in runs) == [
        ("GPT2LMHeadModel", "bfloat16"), ("GPT2LMHeadModel", "float32"),
        ("LlamaForCausalLM", "bfloat16"), ("LlamaForCausalLM", "float32")]
    for run in runs:
        assert run["status"] == "complete" and len(run["points"]) == 4
        assert run["environment"]["host"].startswith("ray node ") and run["settings"]["threads"] == 1
    listed = json.loads(main(["runs", "list", "--format", "json"]) == 0 and capsys.readouterr().out)
    assert sorted(r["id"] for r in listed) == sorted(r["id"] for r in runs)  # in the local history


def test_a_killed_worker_loses_only_its_cell(cluster, tiny_config_files) -> None:
    from ctxscope.remote.ray_cluster import run_on_cluster

    model = str(tiny_config_files["llama"])
    specs = tuple(ModelSpec(model, dtype=d, attn_implementation=a) for d in ("float32", "bfloat16")
                  for a in ("sdpa", "eager"))
    cfg = fast_config((16, 32, 64, 128), min_repeats=20, max_repeats=20)
    pids: dict[int, int] = {}
    killed: list[int] = []
    shown: list[int] = []  # the cell whose events are being shown, from its run's settings

    def kill_first(event: object) -> None:
        # Kill the worker of the cell whose point just arrived: it is mid-run. (The lowest
        # cell that said hello may still be loading its model on a loaded machine: a cell
        # lost before its run starts has no run to record, only a failure line.)
        if isinstance(event, SweepStarted):
            s = event.header.settings
            shown.append(next(i for i, sp in enumerate(specs) if (sp.dtype, sp.attn_implementation) ==
                              (s.dtype, s.attn_implementation)))
        if isinstance(event, PointResult) and not killed:
            cell = shown[-1]
            killed.append(cell)
            os.kill(pids[cell], signal.SIGKILL)

    gen = run_on_cluster("auto", Job("matrix", specs, cfg, strict=False),
                         on_hello=lambda cell, hello: pids.setdefault(cell, hello.pid))
    events, runs = drive(gen, kill_first)
    assert len(runs) == 4
    lost = [r for r in runs if r.status != "complete"]
    # The killed cell was mid-run (its run had started): recorded with what arrived and why.
    assert len(lost) == 1 and lost[0].status == "interrupted" and len(lost[0].points) < 8
    assert "lost on ray node" in lost[0].error and f"pid {pids[killed[0]]}" in lost[0].error
    dead = specs[killed[0]]
    assert (lost[0].header.settings.dtype, lost[0].header.settings.attn_implementation) == \
           (dead.dtype, dead.attn_implementation)
    assert all(len(r.points) == 8 for r in runs if r.status == "complete")
    assert sum(isinstance(e, CellFinished) for e in events) == 4


def test_cancel_cancels_the_outstanding_cells(cluster, tiny_config_files) -> None:
    from ctxscope.remote.ray_cluster import run_on_cluster

    specs = tuple(ModelSpec(str(tiny_config_files["llama"]), dtype=d) for d in ("float32", "bfloat16", "float16"))
    stop = threading.Event()

    def cancel(event: object) -> None:
        if isinstance(event, PointResult):
            stop.set()

    cfg = fast_config((16, 32, 64, 128), min_repeats=100, max_repeats=100, budget_s=60.0)
    _, runs = drive(run_on_cluster("auto", Job("matrix", specs, cfg, strict=False), stop=stop), cancel)
    # Counted, not timed (a busy machine is slow, not wrong): 100 calls per point, so a
    # stop that waited for the end of a run would have brought all 8 points.
    assert 1 <= len(runs) <= 2 and all(r.status == "cancelled" for r in runs)  # the third never started
    assert all(len(r.points) < 8 for r in runs)


def test_without_ray_cluster_says_how_to_install(capsys, monkeypatch, tiny_config_files) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails as when it is not installed
    code = main(["sweep", str(tiny_config_files["llama"]), "--cluster", "auto", *FAST])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and 'pip install "ray[client]>=2.60"' in err

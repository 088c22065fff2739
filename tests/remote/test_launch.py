"""One launcher interface, one recorded stream (issue 25): the same job run here and
over SSH (the test sshd) yields the same events in the same order through
``recorded``, and leaves one complete run in the history."""

from __future__ import annotations

import sys

import pytest

from ctxscope.core.events import (CellFinished, ModelLoading, ModelReady, PointFailed, PointResult, Progress,
                                  SweepStarted)
from ctxscope.core.jobs.job import Job
from ctxscope.core.jobs.launch import THIS_MACHINE, Launcher, Local, drive
from ctxscope.core.paths import database_path
from ctxscope.core.spec import ModelSpec
from ctxscope.core.machine.telemetry import TelemetrySample
from ctxscope.remote.launch import Ssh
from ctxscope.remote.ssh import RemoteTarget
from ctxscope.store.history import open_history
from ctxscope.store.recorded import RunKept, open_recorder, recorded
from tests.conftest import fast_config


def launcher_for(where: str, request: pytest.FixtureRequest) -> Launcher:
    if where == "here":
        return Local()
    sshd = request.getfixturevalue("ssh_env")
    request.getfixturevalue("workers")  # waits for the workers this test started, by pid
    return Ssh(RemoteTarget(sshd.alias, sys.executable))  # the remote is this machine's environment


def shape(events: list[object]) -> list[str]:
    """The stream's order with repeats folded: what the front ends rely on."""
    names: list[str] = []
    for e in events:
        name = "Point" if isinstance(e, (PointResult, PointFailed)) else type(e).__name__
        if isinstance(e, (Progress, TelemetrySample)):
            continue  # how many depends on timing
        if not names or names[-1] != name:
            names.append(name)
    return names


@pytest.mark.parametrize("where", ["here", "ssh"])
def test_a_recorded_job_gives_the_same_stream_and_one_complete_row(where: str, request: pytest.FixtureRequest,
                                                                  tiny_config_files) -> None:
    launcher = launcher_for(where, request)
    assert (launcher.where == THIS_MACHINE) == (where == "here")
    spec = ModelSpec(str(tiny_config_files["llama"]), device="cpu")
    job = Job("matrix", (spec,), fast_config(lengths=(16, 32)))
    events: list[object] = []
    runs = drive(recorded(launcher.run(job), open_recorder()), events.append)
    assert shape(events) == ["ModelLoading", "ModelReady", "SweepStarted", "Point", "CellFinished", "RunKept"]
    assert isinstance(events[0], ModelLoading) and isinstance(events[1], ModelReady)
    assert isinstance(events[2], SweepStarted)
    [finished] = [e for e in events if isinstance(e, CellFinished)]
    [kept] = [e for e in events if isinstance(e, RunKept)]
    assert isinstance(runs, tuple) and [r.id for r in runs] == [finished.result.id] == [kept.result.id]
    assert kept.stored and kept.problems == () and kept.file is None
    points = [e.point for e in events if isinstance(e, (PointResult, PointFailed))]
    assert len(points) == len(finished.result.points) == 4  # prefill and decode at 16 and 32
    with open_history(database_path(), readonly=True) as store:
        [row] = store.list_runs()
        stored = store.get_run(row.id)
    assert row.id == finished.result.id and row.status == "complete" and row.points_total == 4
    assert stored.points == finished.result.points == tuple(points)
    assert (stored.header.environment.host is None) == (where == "here")


def test_a_closed_stream_marks_its_run_failed_with_its_points_kept(tiny_config_files, tmp_path) -> None:
    spec = ModelSpec(str(tiny_config_files["llama"]), device="cpu")
    job = Job("matrix", (spec,), fast_config(lengths=(16, 32, 48)))
    out = tmp_path / "run.json"
    stream = recorded(Local().run(job), open_recorder(), out=lambda run_id: out)
    for event in stream:
        if isinstance(event, PointResult):
            break  # the front end gives up after the first point (a second Ctrl-C)
    stream.close()
    with open_history(database_path(), readonly=True) as store:
        [row] = store.list_runs()
        stored = store.get_run(row.id)
    assert row.status == "failed" and len(stored.points) >= 1
    from ctxscope.core.serialize import load_run

    assert load_run(out).points == stored.points  # and its file holds the same points

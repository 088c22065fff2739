"""What keeps the UI thread free during a sweep (issue 27, item 15; the figures are
bench/gui_responsiveness.py's): the model loads without the collector, the sweep's
telemetry stays in the worker, the legend is placed without mapping every point."""

from __future__ import annotations

import gc

from tests.gui.conftest import set_model

TIMEOUT = 60_000


def test_the_sweep_job_loads_its_model_without_the_collector(window, qtbot, tiny_config_files, monkeypatch) -> None:
    from ctxscope.core.jobs.matrix import ModelSlot

    seen: list[bool] = []
    acquire = ModelSlot.acquire

    def watched(self, spec):
        seen.append(gc.isenabled())
        return acquire(self, spec)

    monkeypatch.setattr(ModelSlot, "acquire", watched)
    set_model(window, str(tiny_config_files["llama"]), "16")
    with qtbot.waitSignal(window.runner.sweepFinished, timeout=TIMEOUT):
        window.sweep_panel.run_button.click()
    qtbot.waitUntil(lambda: not window.runner.busy, timeout=TIMEOUT)
    # A full collection during the load held the GIL ~150 ms in the worker.
    assert seen == [False] and gc.isenabled()


def test_the_sweeps_telemetry_stays_in_the_worker(qtbot, tiny_config_files) -> None:
    from ctxscope.core.events import CellFinished, PointResult
    from ctxscope.core.jobs.job import Job
    from ctxscope.core.jobs.launch import Local
    from ctxscope.core.spec import ModelSpec, SweepConfig
    from ctxscope.core.machine.telemetry import TelemetrySample
    from ctxscope.gui.runner import SweepRunner

    runner = SweepRunner(store=False)
    spec = ModelSpec(str(tiny_config_files["llama"]), device="cpu")
    cfg = SweepConfig(lengths=(16, 32), min_repeats=40, max_repeats=40, budget_s=0.05, telemetry_hz=100.0)
    messages = list(runner.messages(Local(runner.slot), Job("matrix", (spec,), cfg)))
    assert not any(isinstance(m, TelemetrySample) for m in messages)
    assert any(isinstance(m, PointResult) for m in messages)
    [run] = [m.result for m in messages if isinstance(m, CellFinished)]
    assert any(p.telemetry and p.telemetry["samples"] >= 1 for p in run.points)  # still summarised with the points


def test_placing_the_legend_maps_no_point(qtbot, monkeypatch) -> None:
    from PySide6.QtWidgets import QVBoxLayout, QWidget

    from ctxscope.core.results import Point
    from ctxscope.core.stats import LatencyStats
    from ctxscope.gui.plots import LatencyPlot

    holder = QWidget()
    qtbot.addWidget(holder)
    plot = LatencyPlot()
    QVBoxLayout(holder).addWidget(plot)
    holder.resize(600, 400)
    holder.show()
    qtbot.waitExposed(holder)
    for i in range(60):
        plot.add_point("run", "run", Point("prefill", 64 * (i + 1), 1, "ok",
                                           latency_ms=LatencyStats.from_samples([i + 1.0, i + 1.1])))
    vb = plot.getPlotItem().vb
    calls: list[object] = []
    mapped = vb.mapViewToScene
    monkeypatch.setattr(vb, "mapViewToScene", lambda obj: calls.append(obj) or mapped(obj))
    plot.place_legend()
    assert calls == []  # it mapped all 60 points into the scene on every update


def test_a_runtime_error_in_a_job_is_reported_and_ends_the_job(qtbot) -> None:
    """superqt's generator worker returns a RuntimeError (torch raises many) as if its
    worker had been deleted — no errored, no finished: the app stayed busy for good."""
    from ctxscope.core.jobs.job import Job
    from ctxscope.core.spec import ModelSpec
    from ctxscope.gui.runner import SweepRunner

    class Broken:
        where = "here"

        def run(self, job, *, stop=None, confirm=None):
            raise RuntimeError("expected all tensors to be on the same device")
            yield  # a generator, as a launcher's run is

    runner = SweepRunner(store=False)
    failed: list[str] = []
    runner.jobFailed.connect(failed.append)
    with qtbot.waitSignal(runner.busyChanged, timeout=60_000, check_params_cb=lambda busy: not busy):
        assert runner._start(Broken(), Job("load", (ModelSpec("preset:gpt2", device="cpu"),)))
    assert failed == ["RuntimeError: expected all tensors to be on the same device"] and not runner.busy

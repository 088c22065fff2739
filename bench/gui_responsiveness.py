"""UI responsiveness during a CPU sweep, and start-up time.

    QT_QPA_PLATFORM=offscreen python bench/gui_responsiveness.py --out bench/results/gui-cpu.json

1. Heartbeat: a 10 ms QTimer on the UI thread while the real window runs a real sweep
   in its worker thread; reports the max and p99 gap between beats (target max < 50 ms).
2. Per-point plot update: time to add one point to every plot and the table (target
   < 10 ms), measured on the UI thread with many points already shown.
3. Launch: a fresh process from interpreter start to a shown window that has processed
   its first events (target < 2 s), with bytecode cached as in an installed copy (pip
   compiles it; a checkout run with PYTHONDONTWRITEBYTECODE=1 compiled ctxscope's own
   modules at every start, ~0.15 s): one launch unmeasured first fills a cache directory.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import _common  # noqa: F401

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def heartbeat(model: str, lengths: str) -> dict:
    import numpy as np
    from PySide6.QtCore import QElapsedTimer, QEventLoop, QTimer

    from ctxscope.core.lengths import parse_lengths
    from ctxscope.core.spec import ModelSpec, SweepConfig
    from ctxscope.gui.app import build_window, create_app

    app = create_app()
    # The app probes devices right after the window shows (that job imports torch and
    # transformers); a user presses Run after that. Measure the same way: wait for it.
    window = build_window()
    window.resize(1440, 900)
    probed: list = []
    window.runner.devicesFound.connect(probed.append)
    while not probed or window.runner.busy:
        app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 20)
    beats: list[float] = []
    clock = QElapsedTimer()
    clock.start()
    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(lambda: beats.append(clock.nsecsElapsed() / 1e6))
    done: list = []
    window.runner.sweepFinished.connect(done.append)
    timer.start()
    window.start_sweep(ModelSpec(model, device="cpu"), SweepConfig(lengths=parse_lengths(lengths)))
    while not done:
        app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 5)
    timer.stop()
    gaps = np.diff(beats)
    window.close()
    return {"model": model, "lengths": lengths, "beats": len(beats), "sweep_s": beats[-1] / 1e3,
            "gap_max_ms": float(gaps.max()), "gap_p99_ms": float(np.percentile(gaps, 99)),
            "gap_median_ms": float(np.median(gaps)), "points": len(done[0].points)}


def plot_update(n_existing: int = 60) -> dict:
    from PySide6.QtWidgets import QApplication

    from ctxscope.core.results import MemoryStats, Point
    from ctxscope.core.stats import LatencyStats
    from ctxscope.gui.main_window import MainWindow

    app = QApplication.instance()
    window = MainWindow()
    window.resize(1440, 900)
    window.show()

    def point(mode: str, length: int) -> Point:
        return Point(mode, length, 1, "ok", latency_ms=LatencyStats.from_samples([length / 100, length / 99, length / 98]),
                     tokens_per_s=100.0, memory=MemoryStats(10**9, length * 1000, length * 500, 10**9))

    from ctxscope.core.results import Environment, ModelInfo, RunHeader, Settings

    header = RunHeader("bench", "now", ModelInfo("m", "A", "a", 1, True, 1, 1, 1, 1, 1, 1, None, True),
                       Settings("cpu", "float32", "sdpa", 1, ("prefill", "decode"), (1,), 1, 0, 1, 1, 1.0, 0.05, False,
                                False), Environment(None, None, None, None, "", "", "", "", "", memory_bytes=2**34))
    live = window.live
    live.begin_run(header)
    for i in range(n_existing):
        live.add_point("bench", point("prefill" if i % 2 else "decode", 64 * (i // 2 + 1)))
    app.processEvents()
    window.flush_views()
    app.processEvents()
    update, turns = [], []
    for i in range(40):
        t0 = time.perf_counter()
        live.add_point("bench", point("prefill", 64 * (n_existing + i)))
        # Each queued slice is one event-loop turn: time them one by one, paint included.
        while len(live.scheduler):
            t1 = time.perf_counter()
            live.scheduler._on_timer_timeout()
            app.processEvents()
            turns.append((time.perf_counter() - t1) * 1e3)
        update.append((time.perf_counter() - t0) * 1e3)
    data_only = []
    for i in range(40):  # the data update alone (setData, table row), painting deferred
        t0 = time.perf_counter()
        for plot in (window.latency, window.memory, window.throughput):
            plot.add_point("bench", "bench", point("decode", 64 * (n_existing + i)))
        window.table.add_point("bench", point("decode", 64 * (n_existing + i)))
        data_only.append((time.perf_counter() - t0) * 1e3)
    window.close()
    update.sort()
    turns.sort()
    data_only.sort()
    return {"existing_points": n_existing, "window": "1440x900", "point_total_median_ms": update[len(update) // 2],
            "point_total_max_ms": update[-1], "slice_median_ms": turns[len(turns) // 2], "slice_max_ms": turns[-1],
            "slice_p99_ms": turns[int(len(turns) * 0.99)], "data_update_median_ms": data_only[len(data_only) // 2],
            "data_update_max_ms": data_only[-1]}


def launch() -> dict:
    code = ("import time, os; t0 = time.perf_counter();"
            "from ctxscope.gui.app import create_app, build_window; app = create_app(); w = build_window();"
            "app.processEvents(); print(time.perf_counter() - t0); w.runner.shutdown(); w.close()")
    import tempfile

    walls, inner = [], []
    with tempfile.TemporaryDirectory() as pycache:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env.update(PYTHONPATH=str(_common.REPO), PYTHONPYCACHEPREFIX=pycache)
        for i in range(4):
            t0 = time.perf_counter()
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
            if i:  # the first filled the bytecode cache
                walls.append(time.perf_counter() - t0)
                inner.append(float(out.stdout.strip().splitlines()[-1]))
    return {"process_wall_s": sorted(walls)[1], "import_to_shown_s": sorted(inner)[1]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="preset:gpt2")
    ap.add_argument("--lengths", default="64,128,256,512")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    start = launch()
    print(f"launch: {start['process_wall_s']:.2f} s process wall (median of 3), "
          f"{start['import_to_shown_s']:.2f} s from first import to shown window (target < 2 s)")
    beat = heartbeat(args.model, args.lengths)
    print(f"heartbeat over a {beat['sweep_s']:.1f} s sweep ({beat['points']} points): max gap "
          f"{beat['gap_max_ms']:.1f} ms, p99 {beat['gap_p99_ms']:.1f} ms, median {beat['gap_median_ms']:.1f} ms "
          f"(target max < 50 ms)")
    upd = plot_update()
    print(f"per-point data update (3 plots + table, painting deferred): median {upd['data_update_median_ms']:.1f} ms, "
          f"max {upd['data_update_max_ms']:.1f} ms (target < 10 ms)")
    print(f"per-point update with {upd['existing_points']} points shown, 1440x900 window: one view per event-loop "
          f"turn, median {upd['slice_median_ms']:.1f} ms, max {upd['slice_max_ms']:.1f} ms per turn; "
          f"all four views {upd['point_total_median_ms']:.1f} ms in total, paint included")
    _common.write_result(args.out, {"benchmark": "gui_responsiveness", "device": "cpu",
                                    "device_label": _common.device_label("cpu"), "launch": start, "heartbeat": beat,
                                    "plot_update": upd})


if __name__ == "__main__":
    main()

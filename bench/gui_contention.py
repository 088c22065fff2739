"""How much a compute thread beside it stretches the UI thread's view updates.

    QT_QPA_PLATFORM=offscreen python bench/gui_contention.py --out bench/results/gui-contention-cpu.json

The app's situation without its sweep's noise: the real window with 40 points shown,
then 24 more points, each view update (one scheduler tick) timed on the UI thread —
first alone, then beside a thread running GPT-2 forwards (random weights, L tokens, the
app's torch thread count: all cores but one), then (``--nice N``) with that thread and
its OpenMP team at nice N. Alone vs beside separates the UI's own cost from what the
compute costs it; nice vs not separates CPU scheduling from the GIL (a reniced thread
still takes the GIL as often).
"""

from __future__ import annotations

import argparse
import os
import threading
import time

import _common  # noqa: F401

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def _window():
    from ctxscope.core.results import Environment, MemoryStats, ModelInfo, Point, RunHeader, Settings
    from ctxscope.core.stats import LatencyStats
    from ctxscope.gui.app import create_app
    from ctxscope.gui.main_window import MainWindow

    app = create_app()
    window = MainWindow()
    window.resize(1440, 900)
    window.show()

    def point(mode: str, length: int) -> Point:
        return Point(mode, length, 1, "ok", latency_ms=LatencyStats.from_samples([length / 100, length / 99]),
                     tokens_per_s=100.0, memory=MemoryStats(10**9, length * 1000, length * 500, 10**9))

    header = RunHeader("bench", "now", ModelInfo("m", "A", "a", 1, True, 1, 1, 1, 1, 1, 1, None, True),
                       Settings("cpu", "float32", "sdpa", 1, ("prefill", "decode"), (1,), 1, 0, 1, 1, 1.0, 0.05,
                                False, False), Environment(None, None, None, None, "", "", "", "", "", memory_bytes=2**34))
    window.live.start_run(header)
    for i in range(40):
        window.live.add_point("bench", point("prefill" if i % 2 else "decode", 64 * (i // 2 + 1)))
    window.flush_views()
    app.processEvents()
    return app, window, point


def _ticks(app, window, point, start: int, n: int = 24) -> list[float]:
    live, out = window.live, []
    for i in range(n):
        live.add_point("bench", point("prefill", 64 * (start + i)))
        while len(live.scheduler):
            t0 = time.perf_counter()
            live.scheduler._on_timer_timeout()
            live.scheduler._timer.stop()
            app.processEvents()  # the paint and layout the tick posted
            out.append((time.perf_counter() - t0) * 1e3)
    return sorted(out)


def _summary(values: list[float]) -> dict:
    return {"median_ms": values[len(values) // 2], "p90_ms": values[int(len(values) * 0.9)], "max_ms": values[-1],
            "n": len(values)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--length", type=int, default=256)
    ap.add_argument("--nice", type=int, default=10)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    app, window, point = _window()
    torch.set_num_threads(max(1, (os.cpu_count() or 2) - 1))  # the app's default
    model = GPT2LMHeadModel(GPT2Config()).eval()
    ids = torch.randint(0, 50_000, (1, args.length))
    result: dict = {"benchmark": "gui_contention", "device": "cpu", "length": args.length,
                    "torch_threads": torch.get_num_threads(), "load_average": os.getloadavg()[0]}
    result["alone"] = _summary(_ticks(app, window, point, 40))
    for label, nice in (("beside", None), ("beside_reniced", args.nice)):
        stop = threading.Event()

        def work() -> None:
            with torch.inference_mode():
                while not stop.is_set():
                    model(input_ids=ids)

        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        time.sleep(1.0)  # its OpenMP team exists now
        if nice is not None:
            for tid in os.listdir("/proc/self/task"):
                if int(tid) != threading.main_thread().native_id:
                    try:
                        os.setpriority(os.PRIO_PROCESS, int(tid), nice)
                    except OSError:
                        pass
        result[label] = _summary(_ticks(app, window, point, 100 if nice is None else 160))
        stop.set()
        thread.join()
    for label in ("alone", "beside", "beside_reniced"):
        r = result[label]
        print(f"{label:15s} one view update: median {r['median_ms']:.1f} ms, p90 {r['p90_ms']:.1f}, max {r['max_ms']:.1f} "
              f"({r['n']} ticks)")
    window.close()
    _common.write_result(args.out, result)


if __name__ == "__main__":
    main()

"""Grab the app's window with run files open on one tab, to a PNG (the screenshots in
docs/ are made this way, from real run files):

    CTXSCOPE_HOME=$(mktemp -d) QT_QPA_PLATFORM=offscreen python bench/screenshot.py --tab Compare \
        --out docs/architectures.png bench/results/architectures-cpu/{llama,qwen3_5_text,mamba2}.json

(a scratch CTXSCOPE_HOME: the History and Compare lists show only these runs). ``--part sweep``
grabs only the Sweep panel, as the run opened fills it (docs/kv-sweep-panel.png: an int4 run).

Qt's offscreen platform renders the same widgets a display shows (fonts permitting);
``xvfb-run`` works too."""

from __future__ import annotations

import argparse
import sys

import _common  # noqa: F401  (puts the checkout on sys.path)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", help="run files: the first shown, the others overlaid")
    ap.add_argument("--tab", default="Compare", help="the tab to show (its title)")
    ap.add_argument("--size", default="1440x900")
    ap.add_argument("--out", required=True)
    ap.add_argument("--task", default=None, help="Quality tab: the retrieval task its needle grid shows (e.g. vt)")
    ap.add_argument("--settle-ms", type=int, default=3000, help="time for the views to paint before the grab")
    ap.add_argument("--part", choices=("window", "sweep"), default="window",
                    help="the whole window, or only its Sweep panel")
    args = ap.parse_args()
    from PySide6.QtCore import QTimer

    from ctxscope.gui.app import build_window, create_app

    app = create_app()
    window = build_window(runs=args.runs)
    width, height = (int(v) for v in args.size.split("x"))
    window.resize(width, height)
    titles = [window.tabs.tabText(i).replace("&", "") for i in range(window.tabs.count())]
    if args.tab not in titles:
        print(f"no tab {args.tab!r}: {', '.join(titles)}", file=sys.stderr)
        return 2
    if args.tab == "Compare":  # the files join the comparison, ticked, as "Add run file…" does
        from pathlib import Path

        from ctxscope.core.serialize import load_run

        runs = [load_run(Path(p)) for p in args.runs]
        for run, path in zip(runs, args.runs):
            window.compare.add_file_run(run, Path(path).parent)
        window.compare.tick([r.id for r in runs])
    window.tabs.setCurrentIndex(titles.index(args.tab))
    if args.task is not None:  # the task picker beside the needle grid, as a user picks it
        picker = window.quality.task
        tasks = [picker.itemText(i) for i in range(picker.count())]
        if args.task not in tasks:
            print(f"no task {args.task!r} in the run: {', '.join(tasks) or 'none'}", file=sys.stderr)
            return 2
        picker.setCurrentIndex(tasks.index(args.task))

    def grab() -> None:
        (window.sweep_panel if args.part == "sweep" else window).grab().save(args.out)
        print(f"wrote {args.out}")
        app.quit()

    QTimer.singleShot(args.settle_ms, grab)
    app.exec()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

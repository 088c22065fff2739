"""Quality charts for reports (inline SVG, drawn like :mod:`ctxscope.report.charts`):
loss vs context with its 95 % band, the needle heatmap, and the trade-off."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ctxscope.core.quality.effective import Effective, LossRow, needle_grid
from ctxscope.core.quality.records import NeedleTrial
from ctxscope.report.axes import legend, length_axis, short_length
from ctxscope.report.charts import _figure, _styled, _to_svg
from ctxscope.report.tradeoff import Tradeoff, loss_range, marks_by_length


@_styled
def loss_svg(curves: Sequence[tuple[str, str, Sequence[LossRow], Effective | None]], *, title: str,
             target_tokens: int = 1) -> str | None:
    """Mean loss (nats/token) per context with the 95 % band, one curve per run; a
    dotted line where each run's loss is flat from, ✕ where a point failed. The x axis
    is the context C before the window: target j reads C + j tokens, and the axis
    label says so (the mean context is C + (K − 1)/2)."""
    if not any(r.mean is not None for _, _, rows, _ in curves for r in rows):
        return None
    fig, ax = _figure()
    contexts: list[int] = []
    for label, colour, rows, eff in curves:
        ok = [(r.context, r.mean) for r in rows if r.mean is not None]
        contexts += [r.context for r in rows]
        if ok:
            ax.plot([n for n, _ in ok], [mean for _, mean in ok], "o-", color=colour, label=label, ms=4)
            # low and high are set together (both or neither), and only where mean is
            banded = [(r.context, r.low, r.high) for r in rows if r.low is not None and r.high is not None]
            if banded:
                ax.fill_between([n for n, _, _ in banded], [lo for _, lo, _ in banded], [hi for _, _, hi in banded],
                                color=colour, alpha=0.18, lw=0)
        failed = [r.context for r in rows if r.status in ("oom", "error")]
        if failed:
            ax.scatter(failed, [0.97] * len(failed), marker="x", s=40, color=colour,
                       transform=ax.get_xaxis_transform(), clip_on=False)
        if eff is not None and eff.loss:
            ax.axvline(eff.loss, color=colour, ls=":", lw=1)
    length_axis(ax, contexts)
    ax.set_xlabel(f"context C before the target window (tokens; the {target_tokens} targets read C … C + "
                  f"{target_tokens - 1}, on average C + {(target_tokens - 1) / 2:g})" if target_tokens > 1
                  else "context before the target (tokens)")
    ax.set_ylabel("loss of the targets (nats/token)")
    ax.set_title(title)
    legend(ax, fontsize=8)
    return _to_svg(fig)


@_styled
def needle_svg(trials: Sequence[NeedleTrial], *, title: str, task: str | None = None) -> str | None:
    """Retrieval rate per (length, depth) of one task (``None``: all pooled): rows are
    depths (0 % at the top), columns lengths; the cell text is found/trials."""
    lengths, depths, cells = needle_grid(trials, task)
    if not lengths:
        return None
    grid = np.full((len(depths), len(lengths)), np.nan)
    for j, n in enumerate(lengths):
        for i, d in enumerate(depths):
            rate = cells[(n, d)].rate
            grid[i, j] = np.nan if rate is None else rate
    fig, ax = _figure(5.2, 3.4)
    image = ax.imshow(grid, cmap="RdYlGn", vmin=0, vmax=1, aspect="auto")
    for j, n in enumerate(lengths):
        for i, d in enumerate(depths):
            c = cells[(n, d)]
            ax.text(j, i, f"{c.found}/{c.n}" if c.n else "–", ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(lengths)), [short_length(n) for n in lengths])
    ax.set_yticks(range(len(depths)), [f"{d:g}%" for d in depths])
    ax.set_xlabel("prompt length (tokens)")
    ax.set_ylabel("depth of the key")
    ax.grid(False)
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label="retrieved (greedy)", shrink=0.8)
    return _to_svg(fig)


@_styled
def tradeoff_svg(tradeoff: Tradeoff, eff: Effective | None, *, title: str,
                 bands: Sequence[LossRow] = ()) -> str | None:
    """Cost (prefill latency, or KV bytes) and benefit (loss) on one context axis, with
    the knee and the claimed / fits / effective lengths marked. The loss carries its
    95 % band (``bands``: the loss rows) on an axis at least :data:`MIN_LOSS_SPAN` tall,
    the cost an axis from zero: neither is zoomed to make a small change look large."""
    rows = [r for r in tradeoff.rows if r.loss is not None]
    losses = [r.loss for r in rows if r.loss is not None]  # all of rows: the filter above, for mypy
    if len(rows) < 2:
        return None
    fig, ax = _figure()
    xs = [r.length for r in rows]
    ax.plot(xs, losses, "o-", color="#2ca02c", label="loss (nats/token)", ms=4)
    banded = [(r.context, r.low, r.high) for r in bands if r.low is not None and r.high is not None]
    if banded:
        ax.fill_between([n for n, _, _ in banded], [lo for _, lo, _ in banded], [hi for _, _, hi in banded],
                        color="#2ca02c", alpha=0.15, lw=0, label="loss 95 % interval")
    span = loss_range(list(bands) or [LossRow(r.length, "ok", r.loss, None, None, 1) for r in rows])
    if span is not None:
        ax.set_ylim(*span)
    ax.set_ylabel("loss (nats/token)", color="#2ca02c")
    length_axis(ax, xs)
    ax.set_xlabel("context (tokens)")
    cost = [(r.length, r.prefill_ms) for r in rows if r.prefill_ms is not None]
    twin = None
    if cost:
        twin = ax.twinx()
        twin.plot([c[0] for c in cost], [c[1] / 1000 for c in cost], "s--", color="#d62728", ms=4,
                  label="prefill latency (s)")
        twin.set_ylabel("prefill latency (s)", color="#d62728")
        twin.set_ylim(bottom=0)
        twin.grid(False)
    styles = {"knee": ("#000000", "-"), "claimed": ("#7f7f7f", "--"), "fits": ("#1f77b4", "--"),
              "retrieval ≥ threshold": ("#9467bd", ":"), "loss flat from": ("#2ca02c", ":")}
    marks = [(tradeoff.knee, "knee")]
    if eff is not None:
        marks += [(eff.claimed, "claimed"), (eff.fits, "fits"), (eff.retrieval, "retrieval ≥ threshold"),
                  (eff.loss, "loss flat from")]
    lo, hi = min(xs) / 1.5, max(xs) * 1.5
    for x, label in marks_by_length(marks):
        colour, style = styles[label.split(" · ")[0]]
        if lo <= x <= hi:
            ax.axvline(x, color=colour, ls=style, lw=1.2, label=f"{label} {short_length(x)}")
    ax.set_title(title)
    handles, names = ax.get_legend_handles_labels()
    if twin is not None:  # one legend for both axes
        more = twin.get_legend_handles_labels()
        handles, names = handles + more[0], names + more[1]
    ax.legend(handles, names, fontsize=7, loc="upper center")
    return _to_svg(fig)

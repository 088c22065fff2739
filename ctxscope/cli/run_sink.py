"""The terminal's view of a sweep's runs as their events arrive: the live display of
each run and its summary table once it is kept. Recording is not done here (see
:func:`ctxscope.store.recorded.recorded`): this module only shows."""

from __future__ import annotations

from ctxscope.cli.display import SweepDisplay
from ctxscope.core.events import AttentionResult, JobEvent, PointFailed, PointResult, Progress, SweepStarted
from ctxscope.store.recorded import RunKept


class RunView:
    """Shows one run at a time: opened by its :class:`SweepStarted`, closed by its
    :class:`RunKept` (the summary table, naming where the run is) or :meth:`close`."""

    def __init__(self, *, quiet: bool) -> None:
        self.quiet = quiet
        self.display: SweepDisplay | None = None

    def show(self, event: JobEvent | RunKept) -> None:
        if isinstance(event, SweepStarted):
            self.close()
            self.display = SweepDisplay(quiet=self.quiet)
            self.display.__enter__()
            self.display.started(event.header)
        elif isinstance(event, RunKept):
            shown = self.display or SweepDisplay(quiet=self.quiet)
            self.close()
            # The summary comes whatever failed: it names the run id and where the run is.
            shown.summary(event.result, stored=event.stored, out_json=event.file)
        elif self.display is None:
            return
        elif isinstance(event, AttentionResult):
            self.display.attention(event)
        elif isinstance(event, Progress):
            self.display.progress(event)
        elif isinstance(event, (PointResult, PointFailed)):
            self.display.point(event.point)

    def close(self) -> None:
        if self.display is not None:
            self.display.__exit__(None, None, None)
            self.display = None

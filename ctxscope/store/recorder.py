"""Record a sweep as its events arrive — the one consumer the CLI and the desktop app
share: the run row at the start, every point committed the moment it is measured,
attention maps written before the entries that point at them, the final status.

The history can fail under a sweep (another process holds it locked, the disk fills,
the file is damaged). Measuring goes on regardless: the recorder keeps every point,
retries the history now and then, and meanwhile keeps the whole run in a recovery
file (``pending/<id>.json`` beside the history) that the next open adds to it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ctxscope.core.blocks import AttentionEntry
from ctxscope.core.events import AttentionResult, PointFailed, PointResult, SweepStarted
from ctxscope.core.quality.records import LossPoint, NeedleTrial, QualityPoint, QualityResult
from ctxscope.core.results import Point, RunHeader, RunResult
from ctxscope.store.attention_files import AttentionWriter
from ctxscope.store.db import RunStore
from ctxscope.store.errors import HistoryError, file_problem
from ctxscope.store.recovery import write_pending

# While the history fails: how long a retry may wait for a lock, and how often to retry.
RETRY_WAIT_S = 0.2
RETRY_EVERY_S = 5.0


class RunRecorder:
    """Feed it every event. ``store=None`` records nothing to the history but still
    writes attention maps to ``maps_dir`` (beside a ``--out`` file); with ``history``
    set as well, the history was wanted but could not be opened: the run goes to a
    recovery file beside that path instead.

    After :meth:`finish`: ``stored`` (the whole run is in the history), ``problem``
    (the first history error, one line), ``kept_in`` (the recovery file holding it)."""

    def __init__(self, store: RunStore | None, *, maps_dir: Path | None = None, history: Path | None = None,
                 problem: str | None = None) -> None:
        self.store = store
        self.maps_dir = maps_dir
        self.history = store.path if store is not None else history
        self.header: RunHeader | None = None
        self.points: list[Point] = []
        self.attention: list[AttentionEntry] = []
        self.quality: list[LossPoint | NeedleTrial] = []
        self.problem = problem
        self.kept_in: Path | None = None
        self.stored = False
        self._writer: AttentionWriter | None = None
        self._created = False
        self._synced_points = 0
        self._synced_attention = 0
        self._synced_quality = 0
        self._failing = store is None and history is not None
        self._retry_at = 0.0

    @property
    def problems(self) -> list[str]:
        """Files that could not be written while recording (attention maps)."""
        return list(self._writer.problems) if self._writer is not None else []

    def record(self, event: Any) -> None:
        if isinstance(event, SweepStarted):
            self.header = event.header
            self._writer = AttentionWriter(event.header.id, store_enabled=self.history is not None,
                                           out_dir=self.maps_dir,
                                           store_root=self.history.parent if self.history is not None else None)
            self._sync()
        elif isinstance(event, (PointResult, PointFailed)) and self.header is not None:
            self.points.append(event.point)
            self._sync()
        elif isinstance(event, AttentionResult) and self.header is not None:
            if self._writer is not None:
                self._writer.add(event)
            self.attention.extend(event.entries)
            self._sync()
        elif isinstance(event, QualityPoint) and self.header is not None:
            self.quality.append(event.item)
            self._sync()

    def finish(self, result: RunResult) -> None:
        """The sweep ended: store its final status, waiting the full busy timeout."""
        self._sync(result, patient=True)

    def fail(self) -> RunResult | None:
        """After an unexpected error: mark the run failed; return what was measured."""
        if self.header is None:
            return None
        run = self.snapshot("failed")
        self._sync(run, patient=True)
        return run

    def snapshot(self, status: str = "running") -> RunResult:
        assert self.header is not None
        quality = None
        if self.header.settings.quality is not None:
            quality = QualityResult(loss=tuple(q for q in self.quality if isinstance(q, LossPoint)),
                                    needle=tuple(q for q in self.quality if isinstance(q, NeedleTrial)))
        return RunResult(header=self.header, status=status, points=tuple(self.points),
                         attention=tuple(self.attention), quality=quality)

    # -- the history, and what to do when it fails ---------------------------------
    def _sync(self, final: RunResult | None = None, *, patient: bool = False) -> None:
        if self.history is None or self.header is None:
            return
        if self.store is not None and (patient or not self._failing or time.monotonic() >= self._retry_at):
            try:
                self._write(final, patient=patient)
                if final is not None:
                    self.stored = True
                return
            except HistoryError as exc:
                self.problem = self.problem or str(exc)
                self._failing = True
                self._retry_at = time.monotonic() + RETRY_EVERY_S
        self._keep_pending(final)

    def _write(self, final: RunResult | None, *, patient: bool) -> None:
        assert self.store is not None and self.header is not None
        if self._failing:  # catch up in one transaction, whatever was stored before
            run = final or self.snapshot()
            if patient:
                self.store.upsert_run(run, live=final is None)
            else:
                with self.store.waiting(RETRY_WAIT_S):
                    self.store.upsert_run(run, live=final is None)
            self._created, self._failing = True, False
            self._synced_points, self._synced_attention = len(self.points), len(self.attention)
            self._synced_quality = len(self.quality)
            self._drop_pending()
            return
        if not self._created:
            self.store.create_run(self.header)
            self._created = True
        while self._synced_points < len(self.points):
            self.store.add_point(self.header.id, self._synced_points, self.points[self._synced_points])
            self._synced_points += 1
        if self._synced_attention < len(self.attention):
            self.store.add_attention(self.header.id, self.attention[self._synced_attention:])
            self._synced_attention = len(self.attention)
        if self._synced_quality < len(self.quality):
            self.store.add_quality(self.header.id, self.quality[self._synced_quality:])
            self._synced_quality = len(self.quality)
        if final is not None:
            self.store.finish_run(final.id, final.status, final.finished)

    def _keep_pending(self, final: RunResult | None) -> None:
        assert self.history is not None
        try:
            self.kept_in = write_pending(final or self.snapshot(), self.history.parent, live=final is None)
        except OSError as exc:
            # An older recovery file stays (some points beat none after a crash), but it
            # no longer holds the whole run: the caller must keep it elsewhere.
            self.kept_in = None
            self.problem = self.problem or f"the run history cannot be used: {file_problem(exc, self.history)}"

    def _drop_pending(self) -> None:
        if self.history is not None and self.header is not None:
            try:
                (self.history.parent / "pending" / f"{self.header.id}.json").unlink(missing_ok=True)
            except OSError:
                pass  # a read-only folder holds no recovery file of ours

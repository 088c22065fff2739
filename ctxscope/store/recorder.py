"""Record a sweep as its events arrive — the one consumer the CLI and the desktop app
share: the run row at the start, every point committed the moment it is measured,
attention maps written before the entries that point at them, the final status."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ctxscope.core.events import AttentionResult, PointFailed, PointResult, SweepStarted
from ctxscope.core.results import Point, RunHeader, RunResult
from ctxscope.store.attention_files import AttentionWriter
from ctxscope.store.db import RunStore


class RunRecorder:
    """Feed it every event; ``store=None`` records nothing to the history but still
    writes attention maps to ``maps_dir`` (beside a ``--out`` file)."""

    def __init__(self, store: RunStore | None, *, maps_dir: Path | None = None) -> None:
        self.store = store
        self.maps_dir = maps_dir
        self.header: RunHeader | None = None
        self.points: list[Point] = []
        self.attention: list[dict] = []
        self._writer: AttentionWriter | None = None

    def record(self, event: Any) -> None:
        if isinstance(event, SweepStarted):
            self.header = event.header
            if self.store is not None:
                self.store.create_run(event.header)
            self._writer = AttentionWriter(event.header.id, store_enabled=self.store is not None,
                                           out_dir=self.maps_dir)
        elif isinstance(event, (PointResult, PointFailed)) and self.header is not None:
            if self.store is not None:
                self.store.add_point(self.header.id, len(self.points), event.point)
            self.points.append(event.point)
        elif isinstance(event, AttentionResult) and self.header is not None:
            if self._writer is not None:
                self._writer.add(event)
            if self.store is not None:
                self.store.add_attention(self.header.id, list(event.entries))
            self.attention.extend(event.entries)

    def finish(self, result: RunResult) -> None:
        if self.store is not None:
            self.store.finish_run(result.id, result.status, result.finished)

    def fail(self) -> RunResult | None:
        """After an unexpected error: mark the run failed; return what was measured."""
        if self.header is None:
            return None
        if self.store is not None:
            self.store.finish_run(self.header.id, "failed", None)
        return RunResult(header=self.header, status="failed", points=tuple(self.points),
                         attention=tuple(self.attention))

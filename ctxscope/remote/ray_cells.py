"""The cells of a matrix on a Ray cluster, as the local side sees them: one
:class:`~ctxscope.remote.relay.Relay` per cell, the events of the cell being shown, the
others held until it is done (front ends record one run at a time). No Ray import:
``ray`` is handed in by :mod:`ctxscope.remote.ray_cluster`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from ctxscope.core.jobs.job import Job
from ctxscope.core.events import CellFailed, CellFinished
from ctxscope.core.wire import WireError
from ctxscope.remote.relay import Hello, Relay, RemoteError
from ctxscope.remote.sanitize import clean_line


class Cells:
    """Per-cell relays and held events; one cell at a time is shown."""

    def __init__(self, jobs: list[Job], say: Callable[[str], None],
                 on_hello: Callable[[int, Hello], None] | None) -> None:
        self.jobs, self.say, self.on_hello = jobs, say, on_hello
        self.relays = [Relay(job, f"cell {i + 1}") for i, job in enumerate(jobs)]
        self.held: list[list[Any]] = [[] for _ in jobs]
        self.done = [False] * len(jobs)
        self.order: list[int] = []  # cells that have something to show, in the order shown
        self.results: list[Any] = []

    def read(self, ray: Any, i: int, stream: Any, *, cancelled: bool) -> bool:
        """Take one line of cell ``i``; True when its stream is over."""
        relay, spec = self.relays[i], self.jobs[i].specs[0]
        where = f"{relay.host} (pid {relay.hello.pid})" if relay.hello is not None else "its Ray task"
        try:
            line = ray.get(next(stream))
            answer = relay.feed(line)
        except StopIteration:
            return self._end(i, "interrupted", f"{where} ended without a result")
        except WireError as exc:
            ray.cancel(stream, force=True)
            return self._end(i, "failed", f"{where} sent something that is not a ctxscope message ({exc})")
        except RemoteError as exc:
            ray.cancel(stream, force=True)
            return self._end(i, "failed", str(exc))
        except Exception as exc:  # a Ray error: the worker or its node died, or the task was cancelled
            if cancelled and type(exc).__name__ == "TaskCancelledError" and relay.hello is None:
                self.done[i] = True
                return True  # cancelled before it started: nothing to record
            # A node's error text (Ray colours its task names): stripped, one line.
            reason = clean_line((str(exc).strip().splitlines() or [""])[0], 200)
            return self._end(i, "interrupted", f"lost on {where}: {type(exc).__name__}" + (f" ({reason})" if reason else ""))
        if answer is None:
            return False
        kind, value = answer
        if kind == "hello":
            self.say(f"cell {i + 1} ({spec.source} {spec.dtype} {spec.attn_implementation or 'default'}) runs on "
                     f"{relay.host} (pid {value.pid})")
            if self.on_hello is not None:
                self.on_hello(i, value)
        elif kind == "event":
            self._hold(i, value)
        elif kind == "error":
            self._hold(i, CellFailed(spec, f"{relay.host}: {value[1]}"))
        elif kind == "end":
            self.done[i] = True
        return self.done[i]

    def lose_all(self, cells: list[int], why: str) -> tuple[int, int]:
        """``cells`` will never report again (their cluster is gone): a run that had
        started is kept ``interrupted`` with every point that arrived; a cell that had
        not is dropped. Returns (runs kept, cells not run)."""
        kept = not_run = 0
        for i in cells:
            if self.done[i]:
                continue
            if self.relays[i].running:
                self._end(i, "interrupted", why)
                kept += 1
            else:
                self.done[i], not_run = True, not_run + 1
        return kept, not_run

    def _end(self, i: int, status: str, why: str) -> bool:
        finished = self.relays[i].abandon(status, why)
        spec = self.jobs[i].specs[0]
        self._hold(i, finished if finished is not None else CellFailed(spec, why))
        self.done[i] = True
        return True

    def _hold(self, i: int, event: Any) -> None:
        if i not in self.order:
            self.order.append(i)
        self.held[i].append(event)

    def flush(self) -> Iterator[Any]:
        """Show the current cell's events; once it is done, the finished cells next."""
        while self.order:
            head = self.order[0]
            events, self.held[head] = self.held[head], []
            for event in events:
                if isinstance(event, CellFinished):
                    self.results.append(event.result)
                yield event
            if not self.done[head]:
                return
            self.order.pop(0)
            self.order.sort(key=lambda j: not self.done[j])  # finished cells first: nothing to wait for

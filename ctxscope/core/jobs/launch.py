"""Where a job runs, behind one interface: every front end (the CLI's commands, the
desktop app's runner) starts work only through a :class:`Launcher`, and reads back the
same typed events (:data:`~ctxscope.core.events.JobEvent`) and result whether the job
ran on this machine (:class:`Local`), on a host over SSH or on a Ray cluster (the
launchers of :mod:`ctxscope.remote.launch`).

Recording the runs (:func:`ctxscope.store.recorded.recorded`) and showing them are the
front end's; what runs, and where, is the launcher's.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeVar

from ctxscope.core.events import JobEvent, JobResult

if TYPE_CHECKING:
    from ctxscope.core.jobs.job import Job
    from ctxscope.core.predict.guard import MemoryCheck
    from ctxscope.core.jobs.matrix import ModelSlot

#: A running job: its events, then (``StopIteration.value``) its result.
JobRun = Generator[JobEvent, None, JobResult]
Confirm = Callable[["MemoryCheck"], bool]

THIS_MACHINE = "this machine"
_Event = TypeVar("_Event")
_Result = TypeVar("_Result")


class Launcher(Protocol):
    """Runs a :class:`~ctxscope.core.jobs.job.Job` somewhere.

    ``run`` returns a generator: close it to end the job (a remote one is told to
    stop, its connection closed); set ``stop`` to cancel after the current model call
    (the open run ends ``cancelled`` with its points). ``confirm`` is asked before a
    point the memory guard predicts cannot fit (``None``: the sweep's ``force``
    decides)."""

    @property
    def where(self) -> str:
        """Where the jobs run, for messages: :data:`THIS_MACHINE`, a host, a cluster."""
        ...

    def run(self, job: Job, *, stop: threading.Event | None = None, confirm: Confirm | None = None) -> JobRun:
        ...


@dataclass
class Local:
    """This process: the job runs in the calling thread (the app's worker thread).

    ``slot`` holds the loaded model between jobs (the app keeps one; ``None``: each
    job loads its model and releases it at the end, as the CLI does)."""

    slot: ModelSlot | None = None

    @property
    def where(self) -> str:
        return THIS_MACHINE

    def run(self, job: Job, *, stop: threading.Event | None = None, confirm: Confirm | None = None) -> JobRun:
        from ctxscope.core.jobs.job import run_job

        return run_job(job, stop=stop, slot=self.slot, confirm=confirm)


def drive(run: Generator[_Event, None, _Result], on_event: Callable[[_Event], None]) -> _Result:
    """Run a job to its end, handing every event to ``on_event`` (which may raise to
    abort: the job is closed); returns the job's result."""

    def consume(event: _Event) -> bool:
        on_event(event)
        return False  # nothing passed on: the loop below ends with the result

    passed = through(run, consume)
    try:
        next(passed)
    except StopIteration as done:
        result: _Result = done.value
        return result
    raise AssertionError("through() passed an event on")  # consume() keeps every event


def through(run: Generator[_Event, None, _Result],
            on_event: Callable[[_Event], bool]) -> Generator[_Event, None, _Result]:
    """``run``'s events, each handed to ``on_event`` first, in the thread that runs
    the job; passed on when it returns True (the app keeps a sweep's telemetry
    samples in its worker). Returns ``run``'s result; closing this closes ``run``."""
    try:
        while True:
            try:
                event = next(run)
            except StopIteration as done:
                result: _Result = done.value
                return result
            if on_event(event):
                yield event
    finally:
        run.close()

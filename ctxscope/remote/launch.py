"""The launchers that run a job elsewhere (see :mod:`ctxscope.core.jobs.launch`): one host
over SSH (:class:`Ssh`, ``ctxscope worker`` there) and a Ray cluster (:class:`Ray`, one
task per matrix cell). They yield the same events as :class:`~ctxscope.core.jobs.launch.Local`,
so a front end cannot tell them apart except by the host each run records."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from ctxscope.core.events import JobResult, ModelLoading
from ctxscope.core.jobs.job import Job
from ctxscope.core.jobs.launch import Confirm, JobRun
from ctxscope.remote.relay import Hello
from ctxscope.remote.ssh import SILENCE_S, RemoteTarget


def _quiet(text: str) -> None:
    """The default ``say``: nothing to show."""


@dataclass
class Ssh:
    """``target``'s ``ctxscope worker`` runs the job; its events come back over the
    connection (see :func:`~ctxscope.remote.ssh.run_remote` for how a broken stream
    ends). ``on_hello`` is told what the remote is before any work; ``say`` what an
    install does and why a connection ended; ``name_host``: a model being loaded is
    named as being over there (the app's status bar)."""

    target: RemoteTarget
    silence_s: float = SILENCE_S
    on_hello: Callable[[Hello], None] | None = None
    say: Callable[[str], None] = field(default=_quiet)
    name_host: bool = False

    @property
    def where(self) -> str:
        return self.target.host

    def run(self, job: Job, *, stop: threading.Event | None = None, confirm: Confirm | None = None) -> JobRun:
        from ctxscope.remote.ssh import run_remote

        events = run_remote(self.target, job, stop=stop, confirm=confirm, on_hello=self.on_hello,
                            silence_s=self.silence_s, say=self.say)
        return _named(events, self.target.host) if self.name_host else events


@dataclass
class Ray:
    """Each cell of a matrix job runs as its own Ray task on the cluster at ``address``
    (``auto``, ``local``, ``ray://head:10001`` or ``head:6379``), in parallel; the
    events of each cell arrive in turn. ``cpus_per_cell`` on a cluster without GPUs.
    No memory-guard questions (``confirm`` is not asked: a cell runs unattended)."""

    address: str
    cpus_per_cell: int = 1
    say: Callable[[str], None] = field(default=_quiet)

    @property
    def where(self) -> str:
        return f"the Ray cluster ({self.address})"

    def run(self, job: Job, *, stop: threading.Event | None = None, confirm: Confirm | None = None) -> JobRun:
        from ctxscope.remote.ray_cluster import run_on_cluster

        return run_on_cluster(self.address, job, stop=stop, cpus_per_cell=self.cpus_per_cell, say=self.say)


def _named(events: JobRun, host: str) -> JobRun:
    """The remote's events, with the model named as being over there."""
    try:
        event = next(events)
        while True:
            if isinstance(event, ModelLoading):
                event = ModelLoading(replace(event.spec, source=f"{event.spec.source} on {host}"))
            sent = yield event
            event = events.send(sent)
    except StopIteration as done:
        result: JobResult = done.value
        return result
    finally:
        events.close()  # a closed job ends the connection now, not when collected

"""The runner's jobs when they run elsewhere — on a host over SSH (the model panel's
*Run on*) or on a Ray cluster (the Compare dialog's *Run on cluster*): the same
(signal name, payload) messages as the local jobs, so the window cannot tell them
apart except by the host each run records."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from ctxscope.core.jobs import Job, MaxContextRequest
from ctxscope.core.matrix import ModelLoading, ModelReady
from ctxscope.core.maxctx import Trial
from ctxscope.core.spec import ModelSpec, SweepConfig
from ctxscope.remote.ssh import RemoteTarget, run_remote

Messages = Generator[tuple[str, Any], None, None]


def matrix_on_host(runner: Any, target: RemoteTarget, specs: list[ModelSpec], cfg: SweepConfig,
                   matrix: bool) -> Messages:
    from ctxscope.gui.sweep_events import matrix_messages

    job = Job("matrix", tuple(specs), cfg, strict=not matrix, ask=True)  # the memory guard asks the user here
    events = run_remote(target, job, stop=runner.stop_event, confirm=runner.confirm,
                        on_hello=lambda hello: runner.remoteNote.emit(f"Running on {target.host}: {hello.describe()}"))
    yield from matrix_messages(runner, specs, cfg, matrix=matrix, events=_named(events, target.host))


def matrix_on_cluster(runner: Any, address: str, specs: list[ModelSpec], cfg: SweepConfig) -> Messages:
    from ctxscope.gui.sweep_events import matrix_messages
    from ctxscope.remote.ray_cluster import run_on_cluster

    runner.remoteNote.emit(f"Joining the Ray cluster ({address}) …")
    events = run_on_cluster(address, Job("matrix", tuple(specs), cfg, strict=False), stop=runner.stop_event,
                            say=runner.remoteNote.emit)
    yield from matrix_messages(runner, specs, cfg, matrix=True, events=events)


def load_on_host(runner: Any, target: RemoteTarget, spec: ModelSpec) -> Messages:
    """Load the model over there and describe it (nothing stays loaded: each run loads)."""
    yield from _single(runner, target, Job("load", (spec,)))


def maxctx_on_host(runner: Any, target: RemoteTarget, spec: ModelSpec, request: MaxContextRequest) -> Messages:
    yield from _single(runner, target, Job("maxctx", (spec,), maxctx=request))


def _single(runner: Any, target: RemoteTarget, job: Job) -> Messages:
    gen = _named(run_remote(target, job, stop=runner.stop_event), target.host)
    while True:
        try:
            event = next(gen)
        except StopIteration as done:
            result = done.value
            break
        if isinstance(event, ModelLoading):
            yield "modelLoading", event.spec.source
        elif isinstance(event, ModelReady):
            yield "modelLoaded", event.summary
        elif isinstance(event, Trial):
            yield "trialDone", event
    if job.kind == "maxctx" and result is not None:
        yield "maxContextFound", result


def _named(events: Generator[Any, None, Any], host: str) -> Generator[Any, None, Any]:
    """The remote's events, with the model named as being over there."""
    from dataclasses import replace

    try:
        while True:
            try:
                event = next(events)
            except StopIteration as done:
                return done.value
            if isinstance(event, ModelLoading):
                event = ModelLoading(replace(event.spec, source=f"{event.spec.source} on {host}"))
            yield event
    finally:
        events.close()  # a closed job ends the connection now, not when collected

"""A matrix fanned out over a Ray cluster: each model × dtype × kernel cell is one Ray
task asking for one GPU (on a cluster without GPUs: ``cpus_per_cell`` CPUs), run on
whatever node Ray picks, all in parallel. The only module of ctxscope that imports Ray.

A task runs the core's own job (:func:`ctxscope.core.jobs.job.job_lines`) and streams its
wire lines back (a Ray streaming generator); here each cell's lines go through a
:class:`~ctxscope.remote.relay.Relay`, so the front ends receive the same events as
from a local matrix. Front ends record one run at a time, so one cell streams live and
the others are held until it is done (finished cells first), then replayed whole.
A cell whose worker or node dies is recorded with every point that arrived and why;
the rest go on. Cancel sets a flag the running tasks poll (each run ends
``cancelled`` after its current model call) and cancels the tasks not yet started.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import zipfile
from collections.abc import Callable, Generator, Iterator
from dataclasses import replace
from typing import Any

from ctxscope.core.errors import BadInputError
from ctxscope.core.events import JobEvent
from ctxscope.core.results import RunResult
from ctxscope.core.jobs.job import Job, job_to_dict
from ctxscope.core.wire import dumps
from ctxscope.remote.ray_cells import Cells
from ctxscope.remote.ray_discovery import resolve, unreachable
from ctxscope.remote.relay import Hello, RemoteLost

# Ray itself: ctxscope is not on PyPI, so "ctxscope[cluster]" cannot be installed by name.
INSTALL = 'Ray is not installed: pip install "ray[client]>=2.60"'
#: Probing a running cluster: how often, how long each probe may take, and how many
#: failed probes in a row mean it is gone.
WATCH_EVERY_S, WATCH_TIMEOUT_S, WATCH_FAILURES = 2.0, 2.0, 2
#: How long joining a cluster that accepts connections may take.
JOIN_TIMEOUT_S = 30.0
_connected: str | None = None


def import_ray() -> Any:
    """Ray, or a one-line :class:`BadInputError` saying how to install it."""
    try:
        import ray
    except ImportError:
        raise BadInputError(f"--cluster: {INSTALL}") from None
    return ray


def connect(address: str) -> Any:
    """Join the cluster ``address`` means (:func:`~ctxscope.remote.ray_discovery.resolve`:
    ``auto`` is a Ray already joined here, ``$RAY_ADDRESS``, or a cluster this user runs
    on this machine, else a new local one; ``local`` always a new one), after checking
    that it answers. Kept open for the next matrix. Joining ships this ctxscope to
    every task of the job (:func:`shipped`); a Ray this process joined by other means
    is used as it is (each cell still checks its ctxscope is this one)."""
    global _connected
    ray = import_ray()
    if ray.is_initialized() and (address == "auto" or address == _connected):
        return ray
    target = resolve(address)
    if ray.is_initialized():
        ray.shutdown()
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "error")  # Ray's C++ retry warnings would bury the one line
    quiet: dict[str, Any] = dict(log_to_driver=False, logging_level=logging.ERROR, runtime_env=shipped())
    try:
        if target == "local":
            _start_local(ray, quiet)
        else:
            shown = address if address == target else f"{address} ({target})"
            why = unreachable(target)
            if why is not None:
                raise BadInputError(f"--cluster {shown}: no Ray cluster answers there ({why})")
            _join(ray, target, shown, quiet)
    except BadInputError:
        raise
    except Exception as exc:  # Ray's own errors name the cause: keep its first line
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise BadInputError(f"--cluster {address}: cannot join the Ray cluster ({reason})") from None
    _connected = address
    return ray


def _join(ray: Any, target: str, shown: str, quiet: dict[str, Any]) -> None:
    """``ray.init(address=target)``, given :data:`JOIN_TIMEOUT_S`: something that accepts
    connections but is not a Ray cluster makes Ray retry for ever (printing "Failed to
    connect to GCS" every half minute). Ray cannot be interrupted mid-join, so it joins
    in a thread of its own, left behind (daemon) when it does not finish in time."""
    failed: list[BaseException] = []

    def join() -> None:
        try:
            ray.init(address=target, **quiet)
        except BaseException as exc:  # handed to the caller below
            failed.append(exc)

    thread = threading.Thread(target=join, daemon=True, name="ctxscope-ray-join")
    thread.start()
    thread.join(JOIN_TIMEOUT_S)
    if thread.is_alive():
        raise BadInputError(f"--cluster {shown}: it accepts connections but no Ray cluster answered within "
                            f"{JOIN_TIMEOUT_S:.0f} s (a GCS address is HEAD:6379, the Ray Client's ray://HEAD:10001)")
    if failed:
        raise failed[0]


def _start_local(ray: Any, quiet: dict[str, Any]) -> None:
    """A new cluster of this machine's CPUs and GPUs, listening on 127.0.0.1 only
    (``CTXSCOPE_RAY_NODE_IP=ADDRESS`` makes it listen there instead, for other nodes)."""
    ip = os.environ.get("CTXSCOPE_RAY_NODE_IP")
    if ip:
        ray.init(include_dashboard=False, _node_ip_address=ip, **quiet)
        return
    # Ray maps any node address given as 127.0.0.1 to this machine's network address
    # and listens on every interface; only its "no clusters on this OS" switch keeps
    # every process of the cluster on loopback. It is read by the processes Ray starts
    # (from the environment) and by this one (the module constant): both set for the
    # start only.
    from ray._private import ray_constants

    name, saved_env, saved = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", os.environ.get(
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"), ray_constants.ENABLE_RAY_CLUSTER
    os.environ[name], ray_constants.ENABLE_RAY_CLUSTER = "0", False
    try:
        ray.init(include_dashboard=False, **quiet)
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved
        if saved_env is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = saved_env


def shipped() -> dict[str, Any]:
    """The job's ``runtime_env`` that brings this ctxscope to every task: the package
    from its wheel, unpacked once per build (Ray uploads it once, by content, and puts
    it first on each worker's path). Job level: Ray uploads local folders only there."""
    from ctxscope.remote.wheels import cache_dir, ctxscope_wheel, digest

    wheel = ctxscope_wheel()
    folder = cache_dir() / "py_modules" / digest(wheel)[:16]
    if not (folder / "ctxscope" / "__init__.py").is_file():
        part = folder.with_name(f".{folder.name}.{os.getpid()}")
        with zipfile.ZipFile(wheel) as zf:
            zf.extractall(part, members=[n for n in zf.namelist() if n.startswith("ctxscope/")])
        try:
            part.replace(folder)
        except OSError:  # unpacked meanwhile by another process: the same files
            import shutil

            shutil.rmtree(part, ignore_errors=True)
    return {"py_modules": [str(folder / "ctxscope")]}


class _StopFlag:
    """A tiny actor the running cells poll: Ray's own cancel interrupts a task
    mid-call; this lets a run end ``cancelled`` after its model call, cleaned up."""

    def __init__(self) -> None:
        self.stopped = False

    def set(self) -> None:
        self.stopped = True

    def is_set(self) -> bool:
        return self.stopped


def _cell(job: dict[str, Any], flag: Any) -> Iterator[str]:
    """The task: a hello naming the node and GPUs, then the job's wire lines."""
    import ray

    from ctxscope.core.jobs.job import hello, job_from_dict, job_lines

    node = ray.util.get_node_ip_address()  # type: ignore[no-untyped-call]
    yield dumps(hello({"node": node, "gpus": [str(g) for g in ray.get_gpu_ids()]}))
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            try:
                if ray.get(flag.is_set.remote(), timeout=10):
                    stop.set()
            except Exception:  # the driver went away: stop as a lost connection would
                stop.set()
            time.sleep(0.25)

    threading.Thread(target=poll, daemon=True).start()
    try:
        yield from job_lines(job_from_dict(job), stop=stop)
    finally:
        stop.set()


def run_on_cluster(address: str, job: Job, *, stop: threading.Event | None = None, cpus_per_cell: int = 1,
                   say: Callable[[str], None] = lambda text: None,
                   on_hello: Callable[[int, Hello], None] | None = None) -> Generator[JobEvent, None, tuple[RunResult, ...]]:
    """Run every cell of a matrix ``job`` as its own Ray task; yield the events of each
    cell in turn (see the module's docstring); return the runs in the order shown.

    ``on_hello(cell, hello)`` is told where each cell runs (node, process, GPUs)."""
    ray = connect(address)
    stop = stop or threading.Event()
    cells = _cells(ray, job, cpus_per_cell, say)
    flag = ray.remote(num_cpus=0)(_StopFlag).remote()
    task = ray.remote(_cell)
    streams = {task.options(num_returns="streaming", max_retries=0, **options).remote(job_to_dict(cell), flag): i
               for i, (cell, options) in enumerate(cells)}
    feed = Cells([cell for cell, _ in cells], say, on_hello)
    watch = _Watch(ray, address)
    stop_sent = gone = False
    try:
        while streams:
            if stop.is_set() and not stop_sent:
                stop_sent = True
                flag.set.remote()
                for stream, i in streams.items():
                    if feed.relays[i].hello is None:
                        ray.cancel(stream)  # not started: never will
            ready, _ = ray.wait(list(streams), num_returns=1, timeout=0.2)
            for stream in ready:
                i = streams[stream]
                if feed.read(ray, i, stream, cancelled=stop_sent):
                    del streams[stream]
            if (why := watch.gone()) is not None:
                # Nothing more will come: end every cell now. (Ray itself would wait for
                # the cluster, then end this whole process with status 1 after 60 s.)
                gone = True
                kept, not_run = feed.lose_all(list(streams.values()), why)
                streams.clear()
                yield from feed.flush()
                raise RemoteLost(f"{why}; {len(feed.results)} run(s) kept ({kept} cut short: interrupted), "
                                 f"{not_run} cell(s) not run")
            yield from feed.flush()
    finally:
        if gone:
            _forget(ray)
        else:
            for stream in streams:
                ray.cancel(stream, force=True)
            ray.kill(flag)
    yield from feed.flush()
    return tuple(feed.results)


def _cells(ray: Any, job: Job, cpus_per_cell: int, say: Callable[[str], None]) -> list[tuple[Job, dict[str, Any]]]:
    """One job per cell, with the resources its task asks for; says what the cluster has."""
    resources = ray.cluster_resources()
    gpus, cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 0))
    alive = [n for n in ray.nodes() if n.get("Alive")]
    cfg = job.config
    assert cfg is not None and job.kind == "matrix"
    largest = max((int(n.get("Resources", {}).get("CPU", 0)) for n in alive), default=0)
    if not gpus and cpus_per_cell > largest:  # Ray would keep such a task pending for ever
        raise BadInputError(f"--cluster-cpus {cpus_per_cell}: no node of the cluster has that many CPUs (the largest "
                            f"has {largest})")
    cells: list[tuple[Job, dict[str, Any]]] = []
    base = cfg
    for i, spec in enumerate(job.specs):
        cfg = replace(base, cache=job.caches[i]) if job.caches else base  # the cache axis: one strategy per cell
        if gpus and spec.device != "cpu":
            # Ray gives the task one GPU and hides the others: it is this task's "cuda".
            cell_spec, options = replace(spec, device="cuda" if spec.device.startswith("cuda") else spec.device), \
                {"num_gpus": 1, "num_cpus": 1}
            cell_cfg = cfg
        else:
            cell_spec, options = spec, {"num_cpus": cpus_per_cell}
            cell_cfg = cfg if cfg.threads is not None else replace(cfg, threads=cpus_per_cell)
        cells.append((replace(job, specs=(cell_spec,), config=cell_cfg, strict=False, caches=()), options))
    if gpus:
        say(f"Ray cluster: {len(alive)} node(s), {gpus} GPU(s): {len(cells)} cell(s), one GPU each")
    else:
        say(f"Ray cluster: {len(alive)} node(s), no GPU, {cpus} CPU(s): {len(cells)} cell(s) on CPU with "
            f"{cpus_per_cell} CPU(s) and torch thread(s) each, up to {max(1, cpus // cpus_per_cell)} at a time (cells "
            "side by side share memory bandwidth: compare CPU latencies with that in mind)")
    return cells


class _Watch:
    """Whether the cluster still answers: a TCP probe of its address every
    :data:`WATCH_EVERY_S` seconds; gone after :data:`WATCH_FAILURES` failures in a row."""

    def __init__(self, ray: Any, address: str) -> None:
        try:  # the GCS this process talks to; through the Ray Client, the client server
            self.address = address if address.startswith("ray://") else str(ray.get_runtime_context().gcs_address)
        except Exception:
            self.address = ""
        self.failures, self.next = 0, time.monotonic() + WATCH_EVERY_S

    def gone(self) -> str | None:
        if not self.address or time.monotonic() < self.next:
            return None
        why = unreachable(self.address, WATCH_TIMEOUT_S)
        self.next = time.monotonic() + WATCH_EVERY_S
        self.failures = self.failures + 1 if why is not None else 0
        if self.failures < WATCH_FAILURES:
            return None
        return f"the Ray cluster at {self.address} is gone ({why})"


def _forget(ray: Any) -> None:
    """Leave a cluster that is gone, so its core worker does not end this process later."""
    global _connected
    _connected = None
    try:
        ray.shutdown()
    except Exception:  # it is gone: nothing to tell it
        pass

"""``--host`` / ``--remote-python`` (one remote machine over SSH) and ``--cluster`` (a Ray
cluster) for ``ctxscope sweep``: the same job, run elsewhere, its events read back as
if it had run here."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ctxscope.core.errors import BadInputError

if TYPE_CHECKING:
    from ctxscope.core.jobs.launch import Launcher


def add_remote_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("where it runs (default: this machine)")
    g.add_argument("--host", default=None, metavar="USER@HOST",
                   help="measure on this SSH destination (or ~/.ssh/config alias) with `ctxscope worker` there, through "
                        "your own OpenSSH (keys, agent, config; nothing stored, never a password prompt); model "
                        "paths and devices are the remote's; runs are kept here")
    g.add_argument("--remote-python", default=None, metavar="PATH",
                   help="with --host: the remote Python that has ctxscope, when `ctxscope` is not on its PATH")
    _add_install(g)
    _add_timeout(g)
    g.add_argument("--cluster", default=None, metavar="auto|local|ADDRESS",
                   help="run each model × dtype × kernel cell as a Ray task with one GPU, in parallel, ctxscope "
                        "travelling with the job: auto ($RAY_ADDRESS or a cluster you started here, else a new local "
                        "one), local (a new one, on 127.0.0.1), ray://head:10001 or head:6379; needs "
                        "pip install \"ray[client]>=2.60\"")
    g.add_argument("--cluster-cpus", type=int, default=1, metavar="N",
                   help="with --cluster on a cluster without GPUs: CPUs (and torch threads) per cell (default 1)")


def _add_install(p: Any) -> None:
    p.add_argument("--remote-install", action="store_true",
                   help="with --host: install this ctxscope there first, over the same connection (a venv per version "
                        "in the host's ~/.cache/ctxscope, reused next time; torch and the rest are the host's own, "
                        "from --remote-python or python3)")


def _target(args: argparse.Namespace) -> Any:
    from ctxscope.remote.ssh import RemoteTarget

    return RemoteTarget(args.host, args.remote_python, install=bool(getattr(args, "remote_install", False)))


def _add_timeout(p: Any) -> None:
    from ctxscope.remote.ssh import SILENCE_S

    p.add_argument("--remote-timeout", type=float, default=None, metavar="SECONDS",
                   help=f"with --host: give the connection up after this long without a word from the remote (its "
                        f"worker says it is alive every 10 s while a model call runs; default {SILENCE_S:.0f})")


def silence_limit(args: argparse.Namespace) -> float:
    """``--remote-timeout``, checked (default :data:`~ctxscope.remote.ssh.SILENCE_S`)."""
    import math

    from ctxscope.remote.ssh import SILENCE_S

    value = getattr(args, "remote_timeout", None)
    if value is None:
        return SILENCE_S
    if not math.isfinite(value) or value <= 0:
        raise BadInputError(f"--remote-timeout must be a positive number of seconds, not {value}")
    return float(value)


def is_remote(args: argparse.Namespace) -> bool:
    """Whether the sweep runs elsewhere (model sources are then checked there, not here)."""
    check(args)
    return bool(getattr(args, "host", None) or getattr(args, "cluster", None))


def check(args: argparse.Namespace) -> None:
    host, cluster = getattr(args, "host", None), getattr(args, "cluster", None)
    if host and cluster:
        raise BadInputError("--host and --cluster: choose one (a cluster picks its own nodes)")
    if getattr(args, "remote_python", None) and not host:
        raise BadInputError("--remote-python applies to --host")
    if getattr(args, "remote_timeout", None) is not None and not host:
        raise BadInputError("--remote-timeout applies to --host")
    if getattr(args, "remote_install", False) and not host:
        raise BadInputError("--remote-install applies to --host (Ray cells bring ctxscope along by themselves)")
    silence_limit(args)
    if getattr(args, "cluster_cpus", 1) < 1:
        raise BadInputError(f"--cluster-cpus must be at least 1, not {args.cluster_cpus}")
    if host:
        from ctxscope.remote.ssh import check_host

        check_host(host)


def launcher(args: argparse.Namespace, say: Callable[..., None]) -> Launcher:
    """Where the command's job runs: ``--host`` (SSH), ``--cluster`` (Ray) or here.
    ``say(text, always=...)`` shows a note on stderr (where it runs: always)."""
    from ctxscope.core.jobs.launch import Local

    check(args)
    if getattr(args, "host", None):
        from ctxscope.remote.launch import Ssh

        host = args.host
        say(f"connecting to {host} …")
        return Ssh(_target(args), silence_s=silence_limit(args),
                   on_hello=lambda hello: say(f"running on {host} ({hello.describe()})", always=True),
                   say=lambda text: say(text, always=True))
    if getattr(args, "cluster", None):
        from ctxscope.remote.launch import Ray

        return Ray(args.cluster, cpus_per_cell=args.cluster_cpus, say=lambda text: say(text, always=True))
    return Local()


def add_host_options(p: argparse.ArgumentParser) -> None:
    """``--host`` / ``--remote-python`` alone (commands that run one model, not a matrix)."""
    p.add_argument("--host", default=None, metavar="USER@HOST",
                   help="run on this SSH destination with `ctxscope worker` there (model paths are the remote's)")
    p.add_argument("--remote-python", default=None, metavar="PATH",
                   help="with --host: the remote Python that has ctxscope, when `ctxscope` is not on its PATH")
    _add_install(p)
    _add_timeout(p)

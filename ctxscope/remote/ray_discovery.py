"""Which Ray cluster ``--cluster`` means, and whether it answers — without importing Ray.

Ray's own ``address="auto"`` joins any cluster whose raylet runs on this machine,
another user's included, and a cluster that does not answer makes it print "Failed to
connect to GCS" for minutes. Here ``auto`` means a cluster *this user* started on this
machine (or ``$RAY_ADDRESS``), else a new local one; every address is probed with a
plain TCP connection first, with a timeout, so an unreachable one is one line.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from ctxscope.core.errors import BadInputError

#: How long joining a cluster may take to get a first answer from its address.
CONNECT_TIMEOUT_S = 10.0
#: A new local cluster listens on this address (Ray's default: every interface).
LOOPBACK = "127.0.0.1"


def host_port(address: str) -> tuple[str, int]:
    """``(host, port)`` of ``HOST:PORT`` or ``ray://HOST:PORT`` (the client's 10001 by default)."""
    url = urlsplit(address if "://" in address else f"gcs://{address}")
    try:
        port = url.port
    except ValueError:
        port = None
    if not url.hostname or (port is None and url.scheme != "ray"):
        raise BadInputError(f"--cluster {address}: give auto, local, HOST:PORT or ray://HOST:PORT")
    return url.hostname, port if port is not None else 10001


def unreachable(address: str, timeout: float = CONNECT_TIMEOUT_S) -> str | None:
    """Why nothing answers at ``address`` within ``timeout`` seconds, or ``None`` when
    something accepts connections there."""
    host, port = host_port(address)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except socket.timeout:
        return f"no answer within {timeout:.0f} s"
    except OSError as exc:
        return (exc.strerror or type(exc).__name__).lower()
    return None


def own_cluster(processes: Iterable[Any] | None = None) -> str | None:
    """The GCS address of a Ray cluster this user runs on this machine: from a raylet
    process of this user (the latest one ``ray start`` recorded when there are
    several), or ``None``. ``processes`` (psutil processes) is for tests: default, all."""
    import psutil

    me = os.getuid() if hasattr(os, "getuid") else None
    found: set[str] = set()
    for proc in processes if processes is not None else psutil.process_iter():
        try:
            if me is not None and proc.uids().real != me:
                continue  # another user's cluster is not ours to run on
            cmdline = proc.cmdline()
        except (psutil.Error, OSError):
            continue
        if not cmdline or os.path.basename(cmdline[0]) != "raylet":
            continue
        for arg in cmdline:
            for part in arg.split(" "):
                if part.startswith("--gcs-address=") and part.split("=", 1)[1] not in ("", "None"):
                    found.add(part.split("=", 1)[1])
    if not found:
        return None
    latest = _recorded_address()
    return latest if latest in found else sorted(found)[0]


def _recorded_address() -> str | None:
    """What the last ``ray start`` on this machine wrote (Ray's own bookkeeping file)."""
    import tempfile

    path = os.path.join(tempfile.gettempdir(), "ray", "ray_current_cluster")
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read(256).strip() or None
    except OSError:
        return None


def resolve(address: str) -> str:
    """``address`` as it will be joined: ``local`` (start one), or an address to join."""
    if address == "local":
        return "local"
    if address == "auto":
        chosen = os.environ.get("RAY_ADDRESS") or own_cluster()
        return chosen if chosen and chosen != "auto" else "local"
    host_port(address)  # a malformed address is refused before anything else
    return address

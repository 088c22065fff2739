"""``--remote-install``: run this ctxscope on a host that does not have it, over the same
SSH connection as the job.

Instead of ``ctxscope worker``, ssh starts the host's Python on :data:`BOOTSTRAP` (the
standard library only). It looks for a venv of this exact ctxscope in the host's cache
(``~/.cache/ctxscope/venvs/ctxscope-VERSION-HASH-pyXY``, ``$XDG_CACHE_HOME`` honoured);
if there is none it asks for the wheel, receives it on stdin, checks its SHA-256 and
installs it: a venv without pip whose ``ctxscope-host.pth`` adds every package folder
that Python sees, so torch, transformers and the rest are the host's own (its CUDA
build, untouched). Then it becomes ``python -m ctxscope worker`` from that venv, on the
same stdin and stdout, and the job goes on as usual. The next run finds the venv and
sends nothing. Small pure-Python dependencies the host lacks (:data:`SHIPPABLE`) travel
as wheels from this machine; torch, transformers, numpy and psutil (:data:`NEEDED`)
must be there already, or the install says which are missing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import ctxscope
from ctxscope.core.wire import WireError, loads
from ctxscope.remote.channel import Channel
from ctxscope.remote.relay import RemoteError
from ctxscope.remote.sanitize import clean_line, clean_message
from ctxscope.remote.wheels import ctxscope_wheel, digest, local_wheel

#: Modules the worker imports that are the host's own business (compiled, GPU-specific).
NEEDED = ("torch", "transformers", "numpy", "psutil")
#: Modules the worker imports that can travel from here when the host lacks them:
#: module name → distribution name (pure Python, no dependencies of their own).
SHIPPABLE = {"platformdirs": "platformdirs", "pynvml": "nvidia-ml-py"}

# Runs on the host under any Python 3 (it reports one older than 3.10 instead of failing
# to parse). Reads stdin with os.read only: the worker it becomes reads the same stdin,
# and nothing may be left in a buffer between them.
BOOTSTRAP = r'''
import hashlib, importlib.util, json, os, shutil, site, sys, sysconfig, tempfile, zipfile
VERSION, DIGEST, NEEDED, SHIPPABLE = sys.argv[1], sys.argv[2], sys.argv[3].split(","), json.loads(sys.argv[4])

def say(**message):
    message["type"] = "install"
    os.write(1, (json.dumps(message) + "\n").encode())

def fail(text):
    say(state="failed", message=text)
    sys.exit(3)

def read(n):
    data = b""
    while len(data) < n:
        chunk = os.read(0, min(1 << 20, n - len(data)))
        if not chunk:
            fail("the connection ended during the install")
        data += chunk
    return data

def read_line():
    line = b""
    while not line.endswith(b"\n"):
        line += read(1)
        if len(line) > 4096:
            fail("a malformed wheel header")
    return json.loads(line)

if sys.version_info < (3, 10):
    fail("%s is Python %d.%d; ctxscope needs 3.10 or newer (pass --remote-python)" % ((sys.executable,) + sys.version_info[:2]))
missing = [m for m in NEEDED if importlib.util.find_spec(m) is None]
if missing:
    fail("%s has no %s: install %s there, the host's own build (ctxscope brings only itself)"
         % (sys.executable, ", ".join(missing), "them" if len(missing) > 1 else "it"))
cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
root = os.path.join(cache, "ctxscope", "venvs")
venv = os.path.join(root, "ctxscope-%s-%s-py%d%d" % ((VERSION, DIGEST[:12]) + sys.version_info[:2]))
python = os.path.join(venv, "bin", "python")
if os.path.isfile(os.path.join(venv, "ctxscope-install.json")) and os.path.exists(python):
    say(state="ready", where=venv)
else:
    ship = sorted(d for m, d in SHIPPABLE.items() if importlib.util.find_spec(m) is None)
    say(state="need", wheels=["ctxscope"] + ship)
    os.makedirs(root, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".install-", dir=root)
    try:
        import venv as venvs
        venvs.EnvBuilder(with_pip=False, symlinks=True).create(tmp)
        purelib = os.path.join(tmp, "lib", "python%d.%d" % sys.version_info[:2], "site-packages")
        for name in ["ctxscope"] + ship:
            header = read_line()
            data = read(header["size"])
            if header.get("name") != name or hashlib.sha256(data).hexdigest() != header.get("sha256"):
                fail("the %s wheel arrived damaged" % name)
            wheel = os.path.join(tmp, name + ".whl")
            with open(wheel, "wb") as fh:
                fh.write(data)
            with zipfile.ZipFile(wheel) as zf:
                for member in zf.namelist():
                    target = os.path.realpath(os.path.join(purelib, member))
                    if not target.startswith(os.path.realpath(purelib) + os.sep):
                        fail("the %s wheel has a file outside its folder: %s" % (name, member[:80]))
                zf.extractall(purelib)
            os.remove(wheel)
        std = {sysconfig.get_path(k) for k in ("stdlib", "platstdlib")}
        seen = [p for p in sys.path if p and os.path.isdir(p) and p not in std and "lib-dynload" not in p]
        with open(os.path.join(purelib, "ctxscope-host.pth"), "w") as fh:
            fh.write("".join("import site; site.addsitedir(%r)\n" % p for p in seen))
        with open(os.path.join(tmp, "ctxscope-install.json"), "w") as fh:
            json.dump({"version": VERSION, "sha256": DIGEST, "python": sys.executable, "host_paths": seen}, fh)
        try:
            os.rename(tmp, venv)
        except OSError:  # installed meanwhile by another connection: theirs is the same
            shutil.rmtree(tmp, ignore_errors=True)
    except SystemExit:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    except Exception as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        fail("%s: %s" % (type(exc).__name__, str(exc).splitlines()[0][:300] if str(exc) else ""))
    say(state="installed", where=venv)
os.execv(python, [python, "-m", "ctxscope", "worker"])
'''


class Installer:
    """The local side: the command that starts :data:`BOOTSTRAP`, and the answers to
    its ``install`` lines (the wheels, sent on the channel)."""

    def __init__(self, host: str, say: Callable[[str], None] = lambda text: None) -> None:
        self.host, self.say = host, say
        self.wheel = ctxscope_wheel()
        self.digest = digest(self.wheel)

    def command(self, python: str | None) -> list[str]:
        return [python or "python3", "-c", BOOTSTRAP, ctxscope.__version__, self.digest, ",".join(NEEDED),
                json.dumps(SHIPPABLE)]

    def handle(self, raw: bytes, channel: Channel) -> bool:
        """Whether ``raw`` was an ``install`` line (answered); raises :class:`RemoteError`
        when the install failed over there."""
        try:
            message = loads(raw)
        except WireError:
            return False
        if message["type"] != "install":
            return False
        message = clean_message(message)
        state, where = message.get("state"), str(message.get("where", ""))
        if state == "need":
            self._send(message.get("wheels"), channel)
        elif state == "installed":
            self.say(f"installed ctxscope {ctxscope.__version__} on {self.host} in {clean_line(where, 300)}")
        elif state == "failed":
            raise RemoteError(f"cannot install ctxscope on {self.host}: {clean_line(str(message.get('message')))}")
        elif state != "ready":
            raise WireError(f"an install message in state {str(state)[:20]!r}")
        return True

    def _send(self, names: object, channel: Channel) -> None:
        allowed = {"ctxscope", *SHIPPABLE.values()}
        if not isinstance(names, list) or not names or not all(isinstance(n, str) and n in allowed for n in names):
            raise WireError("an install request for wheels ctxscope does not send")
        wheels: list[tuple[str, Path]] = []
        for name in names:
            path = self.wheel if name == "ctxscope" else local_wheel(name)
            if path is None:
                raise RemoteError(f"cannot install ctxscope on {self.host}: it lacks {name}, and this machine has "
                                  f"no pure-Python copy to send; install {name} there")
            wheels.append((name, path))
        size = sum(p.stat().st_size for _, p in wheels)
        self.say(f"installing ctxscope {ctxscope.__version__} on {self.host} ({', '.join(names)}: "
                 f"{size / 1024**2:.1f} MiB) …")
        for name, path in wheels:
            data = path.read_bytes()
            header = {"name": name, "size": len(data), "sha256": digest(path)}
            channel.send((json.dumps(header) + "\n").encode() + data)

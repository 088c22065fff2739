"""A throwaway OpenSSH server on 127.0.0.1 for tests and benchmarks: its own host key,
one authorised client key, a config file; nothing of the machine's SSH setup is used
or changed. ``CTXSCOPE_SSH`` then points ctxscope's ssh at the client config."""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ALIAS = "ctxtest"


@dataclass(frozen=True)
class LocalSshd:
    port: int
    pid: int
    client_config: Path
    alias: str = ALIAS

    @property
    def ssh_command(self) -> str:
        """The value for ``CTXSCOPE_SSH``."""
        return f"ssh -F {self.client_config}"


def why_unavailable() -> str | None:
    """Why no local sshd can be started here, or ``None``."""
    if shutil.which("ssh") is None or shutil.which("ssh-keygen") is None:
        return "the OpenSSH client is not installed (apt-get install openssh-client)"
    if _sshd() is None:
        return "sshd is not installed (apt-get install openssh-server)"
    if not Path("/run/sshd").is_dir() and os.geteuid() != 0:
        return "sshd needs /run/sshd (its privilege separation directory), which only root can create"
    return None


def _sshd() -> str | None:
    return shutil.which("sshd") or next((p for p in ("/usr/sbin/sshd", "/usr/local/sbin/sshd") if Path(p).exists()),
                                        None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keygen(path: Path) -> None:
    for old in (path, path.with_name(path.name + ".pub")):  # ssh-keygen would ask before overwriting
        old.unlink(missing_ok=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)


@contextlib.contextmanager
def local_sshd(folder: Path) -> Iterator[LocalSshd]:
    """Start sshd (``-D -e``) on a free port of 127.0.0.1, wait until it listens, stop it after."""
    sshd = _sshd()
    assert sshd is not None, why_unavailable()
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    folder.mkdir(parents=True, exist_ok=True)
    _keygen(folder / "host_key")
    _keygen(folder / "client_key")
    shutil.copyfile(folder / "client_key.pub", folder / "authorized_keys")
    port, user = _free_port(), getpass.getuser()
    (folder / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {folder / 'host_key'}\n"
        f"AuthorizedKeysFile {folder / 'authorized_keys'}\nPidFile {folder / 'sshd.pid'}\n"
        "StrictModes no\nUsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        f"PubkeyAuthentication yes\nPermitRootLogin prohibit-password\nAllowUsers {user}\nLogLevel ERROR\n")
    host_pub = (folder / "host_key.pub").read_text().split()
    (folder / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
    (folder / "ssh_config").write_text(
        f"Host {ALIAS}\n  HostName 127.0.0.1\n  Port {port}\n  User {user}\n"
        f"  IdentityFile {folder / 'client_key'}\n  IdentitiesOnly yes\n  IdentityAgent none\n"
        f"  UserKnownHostsFile {folder / 'known_hosts'}\n  StrictHostKeyChecking yes\n  LogLevel ERROR\n")
    proc = subprocess.Popen([sshd, "-D", "-e", "-f", str(folder / "sshd_config")], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 15
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"sshd exited: {proc.stderr.read().decode(errors='replace') if proc.stderr else ''}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("sshd did not start listening within 15 s") from None
                time.sleep(0.05)
        yield LocalSshd(port=port, pid=proc.pid, client_config=folder / "ssh_config")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()

"""Joining Ray clusters: a cluster whose nodes never had ctxscope (it travels with the
job), one that dies mid-matrix, one that does not answer, what ``auto`` may join, and
a new local cluster that listens on loopback only. The clusters are started here, in
processes of their own, and stopped by their process ids."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from ctxscope.cli import main
from tests.remote.conftest import bare_python, points_stored

pytest.importorskip("ray", reason='Ray is not installed (pip install "ray[client]>=2.60")')
FAST = ["--min-repeats", "2", "--max-repeats", "3", "--budget", "0.05"]
RAY_START = "import sys; from ray.scripts.scripts import main; sys.argv[0] = 'ray'; main()"


@pytest.fixture(scope="module")
def bare(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return bare_python(tmp_path_factory.mktemp("node") / "env")


def start_head(python: Path) -> tuple[subprocess.Popen[bytes], str, Path]:
    """``ray start --head --block`` under ``python`` (its workers run that Python):
    (the process, the GCS address, its temp folder). A short temp folder: Ray's socket
    paths must stay under 107 bytes."""
    temp = Path(tempfile.mkdtemp(prefix="ctxray-"))
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    proc = subprocess.Popen([str(python), "-c", RAY_START, "start", "--head", "--block", "--num-cpus", "2",
                             "--include-dashboard", "false", "--temp-dir", str(temp), "--port", "0"],
                            env=env, cwd=temp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (temp / "ray_current_cluster").is_file() or not (temp / "ray_current_cluster").read_text().strip():
        assert proc.poll() is None and time.monotonic() < deadline, "ray start did not come up"
        time.sleep(0.2)
    return proc, (temp / "ray_current_cluster").read_text().strip(), temp


def stop_head(proc: subprocess.Popen[bytes], temp: Path) -> None:
    """Every process of that cluster, by id (children of its ``ray start``)."""
    try:
        family = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        family = []
    for p in family:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    proc.kill()
    proc.wait()
    psutil.wait_procs(family, timeout=30)
    shutil.rmtree(temp, ignore_errors=True)


class Heads:
    """The module's bare-node heads: started as tests ask, one alive at a time, each
    stopped by its process id (by the test that kills it, else at the module's end)."""

    def __init__(self, python: Path) -> None:
        self.python = python
        self.current: tuple[subprocess.Popen[bytes], str, Path] | None = None
        self.used = False

    def get(self, *, fresh: bool) -> tuple[subprocess.Popen[bytes], str, Path]:
        """A running head; ``fresh``: one no test has used yet."""
        if self.current is not None and (self.current[0].poll() is not None or (fresh and self.used)):
            self.stop()
        if self.current is None:
            self.current, self.used = start_head(self.python), False
        self.used = True
        return self.current

    def stop(self) -> None:
        if self.current is not None:
            proc, _, temp = self.current
            if proc.poll() is None:
                stop_head(proc, temp)
            else:  # a test stopped it (and waited for it): its id may be another process's now
                shutil.rmtree(temp, ignore_errors=True)
            self.current = None


@pytest.fixture(scope="module")
def heads(bare: Path) -> Iterator[Heads]:
    """A head costs ~5 s to start (and 2 s to stop): the test that ships ctxscope gets one
    of its own, the test that then kills a cluster mid-matrix may reuse it."""
    held = Heads(bare)
    yield held
    held.stop()


@pytest.fixture
def fresh_head(heads: Heads) -> tuple[subprocess.Popen[bytes], str, Path]:
    return heads.get(fresh=True)


@pytest.fixture
def head(heads: Heads) -> tuple[subprocess.Popen[bytes], str, Path]:
    return heads.get(fresh=False)


@pytest.fixture
def own_connection(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This process joins (and leaves) a cluster itself: only a local one it starts, or
    none (a driver whose cluster dies is ended by Ray a minute later)."""
    import ray

    from ctxscope.remote import ray_cluster

    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    if ray.is_initialized():
        ray.shutdown()
    yield
    try:
        ray.shutdown()
    finally:
        ray_cluster._connected = None


def driver(args: list[str], home: Path, cwd: Path) -> tuple[subprocess.Popen[bytes], Path]:
    """``ctxscope ARGS`` in a process of its own (and its stderr file): a Ray driver whose
    cluster is killed under it is ended by Ray a minute later, which must not be the
    test process. Its folder is not a checkout (Ray puts the driver's folder on the
    workers' path)."""
    env = {**os.environ, "CTXSCOPE_HOME": str(home), "RAY_AUTH_MODE": "disabled"}
    log = cwd / "driver.err"
    with open(log, "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "ctxscope", *args], env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                                stderr=err)
    return proc, log


@pytest.mark.timeout(900)  # a cluster's processes start slowly on a busy machine (3 min seen beside two busy loops)
def test_ctxscope_travels_to_nodes_that_never_had_it(fresh_head, tiny_config_files, tmp_path) -> None:
    _, address, _ = fresh_head
    out = tmp_path / "run.json"
    proc, log = driver(["sweep", str(tiny_config_files["llama"]), "--lengths", "16,32", "--cluster", address, "--out",
                        str(out), "--quiet", *FAST], tmp_path / "home", tmp_path)
    assert proc.wait(timeout=840) == 0, log.read_text()  # was: "No module named 'ctxscope'" on the node
    run = json.loads(out.read_text())
    assert run["status"] == "complete" and len(run["points"]) == 4 and run["environment"]["host"].startswith("ray node")


@pytest.mark.timeout(900)
def test_a_cluster_that_dies_mid_matrix_ends_it_at_once(head, tiny_config_files, tmp_path) -> None:
    proc, address, temp = head
    home = tmp_path / "home"
    # Three cells on two CPUs: one waits, which is what kept Ray waiting for a dead cluster.
    sweep, log = driver(["sweep", str(tiny_config_files["llama"]), "--dtype", "float32,bfloat16,float16", "--lengths",
                         "16,32,64,128", "--min-repeats", "50", "--max-repeats", "50", "--budget", "30", "--cluster",
                         address, "--quiet"], home, tmp_path)
    try:
        assert points_stored(1, home / "runs.sqlite3", timeout=600), log.read_text()  # a point measured over there
        stop_head(proc, temp)  # the whole cluster, gone
        sweep.wait(timeout=240)
    finally:
        if sweep.poll() is None:
            sweep.send_signal(signal.SIGKILL)
            sweep.wait()
    err = log.read_text()
    # Was: a stall, then Ray's own exit with status 1 a minute after the cluster died.
    lines = [line for line in err.splitlines() if line.startswith("ctxscope: error:")]
    assert sweep.returncode == 3, err
    assert any(f"the Ray cluster at {address} is gone" in line for line in lines), err


def test_an_address_where_no_cluster_answers_is_one_line(capsys, own_connection) -> None:
    code = main(["sweep", "preset:gpt2", "--cluster", "127.0.0.1:1"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert "--cluster 127.0.0.1:1: no Ray cluster answers there (connection refused)" in err


def test_a_port_that_is_not_ray_is_given_up(tmp_path) -> None:
    """It accepts connections, it never answers as Ray does: one line after the join
    timeout (1 s here), not Ray's retries for ever. In a process of its own: Ray's join
    cannot be stopped and is left behind."""
    import socket

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        code = ("import sys; import ctxscope.remote.ray_cluster as r; r.JOIN_TIMEOUT_S = 1.0; "
                "from ctxscope.cli import main; sys.exit(main(sys.argv[1:]))")
        proc = subprocess.run([sys.executable, "-c", code, "sweep", "preset:gpt2", "--cluster", f"127.0.0.1:{port}"],
                              capture_output=True, text=True, timeout=120,
                              env={**os.environ, "CTXSCOPE_HOME": str(tmp_path), "RAY_AUTH_MODE": "disabled"})
    lines = [line for line in proc.stderr.splitlines() if line.startswith("ctxscope:")]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert "it accepts connections but no Ray cluster answered within 1 s" in lines[0]


def fake_raylet(gcs: str, user: str | None = None) -> subprocess.Popen[bytes]:
    """A process that looks like a raylet to a process scan (``ray`` finds clusters so);
    the system's Python, which any user may run."""
    python = shutil.which("python3", path="/usr/bin:/bin") or sys.executable
    return subprocess.Popen(["bash", "-c", f'exec -a raylet {python} -c "import time; time.sleep(120)" '
                             f"--gcs-address={gcs}"], user=user, cwd="/", stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def test_auto_never_means_another_users_cluster() -> None:
    from ctxscope.remote.ray_discovery import own_cluster

    if os.geteuid() != 0:
        pytest.skip("starting a process as another user needs root")
    theirs, mine = fake_raylet("10.9.9.9:6379", user="nobody"), fake_raylet("127.0.0.1:6380")
    try:
        deadline = time.monotonic() + 30
        procs = [psutil.Process(p.pid) for p in (theirs, mine)]
        while any(p.cmdline()[:1] != ["raylet"] for p in procs):  # until both have exec'd
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert own_cluster(procs[:1]) is None  # Ray's own 'auto' would join this one
        assert own_cluster(procs) == "127.0.0.1:6380"
    finally:
        for p in (theirs, mine):
            p.kill()
            p.wait()


def test_a_new_local_cluster_listens_on_loopback_only(own_connection) -> None:
    from ctxscope.remote.ray_cluster import connect

    ray = connect("local")
    assert ray.get(ray.remote(lambda: 1).remote()) == 1  # a worker started too
    mine = {p.pid for p in psutil.Process().children(recursive=True)}
    listening = {(c.pid, c.laddr.ip) for c in psutil.net_connections("inet")
                 if c.status == psutil.CONN_LISTEN and c.pid in mine}
    assert listening, "the cluster's processes listen somewhere"
    assert {ip for _, ip in listening} <= {"127.0.0.1", "::ffff:127.0.0.1", "::1"}, listening  # was '::' (all)

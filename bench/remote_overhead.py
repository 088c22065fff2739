"""Remote overhead: the same sweep run here and over SSH to 127.0.0.1 (a throwaway sshd),
each as a whole ``ctxscope sweep`` command, in alternating rounds.

    python bench/remote_overhead.py --out bench/results/remote-overhead-cpu.json

Each sweep uses a fixed number of timed calls per point (``--repeats``), so its wall
time does not depend on the spread. Reports the wall time SSH adds — the fixed cost
(connect, the remote process starting and importing torch) from a one-call sweep, and
the whole 4-length sweep — and the ratio of every point's median latency over SSH to
here, beside the ratio between two local rounds (the noise floor): the timed calls run
on the remote machine, so the ratios must stay within that noise. Rounds alternate
which side goes first. Needs ``sshd`` (apt-get install openssh-server); run as root, or
where /run/sshd exists.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common

from tests.remote.sshd import local_sshd, why_unavailable


def sweep(args: argparse.Namespace, out: Path, env: dict[str, str], host: str | None,
          lengths: str | None = None, repeats: int | None = None) -> tuple[float, dict]:
    n = str(repeats or args.repeats)
    cmd = [sys.executable, "-m", "ctxscope", "sweep", args.model, "--device", "cpu", "--lengths", lengths or args.lengths,
           "--min-repeats", n, "--max-repeats", n, "--no-store", "--quiet", "--out", str(out)]
    if host:
        cmd += ["--host", host, "--remote-python", sys.executable]
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0, json.loads(out.read_text())


def medians(run: dict) -> dict[str, float]:
    return {f"{p['mode']} {p['length']}": p["latency_ms"]["median"] for p in run["points"] if p["status"] == "ok"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="preset:gpt2")
    ap.add_argument("--lengths", default="128,256,512,1k")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=10, help="timed calls per point (fixed)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    reason = why_unavailable()
    if reason:
        raise SystemExit(f"remote_overhead: {reason}")
    with tempfile.TemporaryDirectory() as tmp, local_sshd(Path(tmp) / "sshd") as server:
        env = {**os.environ, "CTXSCOPE_SSH": server.ssh_command, "CTXSCOPE_HOME": str(Path(tmp) / "home"),
               "PYTHONPATH": str(_common.REPO)}
        rounds, fixed = [], []
        for i in range(args.rounds):
            sides = [None, server.alias] if i % 2 == 0 else [server.alias, None]
            small = {h: sweep(args, Path(tmp) / f"s{i}{bool(h)}.json", env, h, "128", 1)[0] for h in sides}
            fixed.append(small[server.alias] - small[None])
            walls, runs = {}, {}
            for h in sides:
                walls[h], runs[h] = sweep(args, Path(tmp) / f"r{i}{bool(h)}.json", env, h)
            rounds.append({"local_wall_s": walls[None], "ssh_wall_s": walls[server.alias], "local": medians(runs[None]),
                           "ssh": medians(runs[server.alias]), "host": runs[server.alias]["environment"]["host"],
                           "one_call_local_s": small[None], "one_call_ssh_s": small[server.alias]})
            print(f"round {i + 1}: one-call sweep local {small[None]:.1f} s, over SSH {small[server.alias]:.1f} s; "
                  f"4-length sweep local {walls[None]:.1f} s, over SSH {walls[server.alias]:.1f} s")
    points = list(rounds[0]["local"])
    ratio = {k: statistics.median(r["ssh"][k] / r["local"][k] for r in rounds) for k in points}
    noise = {k: statistics.median(rounds[i + 1]["local"][k] / rounds[i]["local"][k] for i in range(len(rounds) - 1))
             for k in points} if len(rounds) > 1 else {}
    added = [r["ssh_wall_s"] - r["local_wall_s"] for r in rounds]
    summary = {"added_wall_s_median": statistics.median(added), "added_wall_s": added,
               "added_fixed_s_median": statistics.median(fixed), "added_fixed_s": fixed,
               "median_ratio_ssh_over_local": ratio, "median_ratio_local_over_local": noise,
               "ratio_range": [min(ratio.values()), max(ratio.values())],
               "noise_range": [min(noise.values()), max(noise.values())] if noise else None}
    print(f"SSH adds {summary['added_fixed_s_median']:.2f} s to a one-call sweep and "
          f"{summary['added_wall_s_median']:.2f} s to the 4-length sweep (medians of {len(rounds)} rounds)")
    print("median latency over SSH / here: " + ", ".join(f"{k} {v:.2f}×" for k, v in ratio.items()))
    if noise:
        print("here / here (next round):       " + ", ".join(f"{k} {v:.2f}×" for k, v in noise.items()))
    _common.write_result(args.out, {"benchmark": "remote_overhead", "model": args.model, "lengths": args.lengths,
                                    "device": "cpu", "rounds": rounds, "summary": summary,
                                    "load_average_1m_at_end": os.getloadavg()[0]})


if __name__ == "__main__":
    main()

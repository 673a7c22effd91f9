#!/usr/bin/env python3
"""Compare plan and drift of this checkout with an earlier revision, side by side.

"No slower than before" for a change that moves code: both revisions run the real CLI
(``python -m dsrctl``, each from its own tree) against the same converged namespace of N
VIPs, interleaved in a shuffled order each round, so a busy moment of the machine hits
both alike. Reported per command and size: the median wall time, the median CPU time
(user + system of the child, less sensitive to other load on the machine) and the median
of the per-round ratios (this checkout / base).

    python benchmarks/compare.py --base f88b5b2
    python benchmarks/compare.py --base main~3 --sizes 1000 --rounds 15

The base is checked out with ``git worktree add --detach`` into a temporary directory and
removed afterwards. Only 198.18.0.0/15 is used, inside namespaces named
``dsrc-<pid>-<n>``, always deleted; the host's own network settings are never touched.
Exits 0 whatever the figures (it is a measurement), 1 if the benchmark itself breaks.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
NET = ipaddress.IPv4Network("198.18.0.0/15")


def run(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload,no-any-return]


def timed(command: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds (user + system of the child) and exit code."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.returncode


def spec_text(size: int, workdir: Path) -> str:
    hosts = NET.hosts()
    vips = "".join(f'[[vip]]\naddress = "{next(hosts)}"\n' for _ in range(size))
    return f'version = 1\n{vips}[linux.persist]\nroot = "{workdir}"\n'


def prepare(name: str, size: int, workdir: Path, env: dict[str, str]) -> Path:
    """A namespace converged on a spec of ``size`` VIPs (applied by this checkout)."""
    if run(["ip", "netns", "add", name]).returncode != 0:
        raise SystemExit(f"cannot create namespace {name} (root needed)")
    run(["ip", "-n", name, "link", "set", "lo", "up"])
    (workdir / "etc" / "sysctl.d").mkdir(parents=True)
    spec = workdir / "dsrctl.toml"
    spec.write_text(spec_text(size, workdir))
    applied = run(
        ["ip", "netns", "exec", name, sys.executable, "-m", "dsrctl", "apply",
         "--auto-approve", str(spec)],
        env=env, cwd=REPO,
    )  # fmt: skip
    if applied.returncode != 0:
        raise SystemExit(f"apply of {size} VIPs failed: {applied.stderr.strip()}")
    return spec


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the revision to compare with")
    parser.add_argument("--sizes", default="1000,10000", help="VIP counts (default 1000,10000)")
    parser.add_argument("--rounds", type=int, default=9, help="timed rounds (default 9)")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="dsrctl-compare-") as tmp:
        base_tree = Path(tmp) / "base"
        added = run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(base_tree),
                     args.base])  # fmt: skip
        if added.returncode != 0:
            raise SystemExit(f"cannot check out {args.base}: {added.stderr.strip()}")
        names: list[str] = []
        try:
            return compare(args.base, base_tree, sizes, args.rounds, Path(tmp), names)
        finally:
            for name in names:
                run(["ip", "netns", "del", name])
            run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(base_tree)])


def compare(base: str, base_tree: Path, sizes: list[int], rounds: int, tmp: Path,
            names: list[str]) -> int:  # fmt: skip
    env = dict(os.environ, NO_COLOR="1", PYTHONPYCACHEPREFIX=str(tmp / "pycache"))
    env.pop("DSRCTL_REQUIRE_NETNS", None)
    # Compiled bytecode, as after pip install (cached outside both trees; the first round
    # fills the cache).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    trees = {"base": base_tree, "head": REPO}
    print(f"base {base} ({base_tree}) vs this checkout ({REPO}); {rounds} rounds")
    print("| command | VIPs | base wall ms | head wall ms | base CPU ms | head CPU ms "
          "| CPU ratio head/base (median of rounds) |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|")
    for size in sizes:
        name = f"dsrc-{os.getpid()}-{len(names)}"
        names.append(name)
        workdir = tmp / name
        state = tmp / f"{name}-state"
        env["DSRCTL_STATE_DIR"] = str(state)
        spec = prepare(name, size, workdir, env)
        for command in ("plan", "drift"):
            argv = ["ip", "netns", "exec", name, sys.executable, "-m", "dsrctl", command,
                    str(spec)]  # fmt: skip
            figures: dict[str, list[tuple[float, float]]] = {"base": [], "head": []}
            for round_ in range(rounds + 1):  # the first round warms the bytecode cache
                order = list(trees)
                random.shuffle(order)
                for which in order:
                    wall, cpu, code = timed(argv, env, trees[which])
                    if code != 0:
                        raise SystemExit(f"{which} {command} of {size} VIPs exited {code}")
                    if round_:
                        figures[which].append((wall, cpu))
            ratios = [h[1] / b[1] for b, h in zip(figures["base"], figures["head"], strict=True)]
            b_wall = statistics.median(w for w, _ in figures["base"]) * 1000
            h_wall = statistics.median(w for w, _ in figures["head"]) * 1000
            b_cpu = statistics.median(c for _, c in figures["base"]) * 1000
            h_cpu = statistics.median(c for _, c in figures["head"]) * 1000
            print(f"| {command} | {size:,} | {b_wall:.0f} | {h_wall:.0f} | {b_cpu:.0f} | "
                  f"{h_cpu:.0f} | {statistics.median(ratios):.3f} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())

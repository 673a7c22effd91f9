#!/usr/bin/env python3
"""Benchmark dsrctl as an operator runs it: the real CLI in throwaway network namespaces.

Measures, with the interpreter running this script (sys.executable):

* ``apply --auto-approve`` of 1, 100 and 1,000 VIPs, each repetition in a fresh namespace,
  checking with ``ip`` that the VIPs really are on lo afterwards;
* ``drift`` and ``plan`` on the converged namespaces;
* ``drift`` on a drifted namespace (one VIP removed) at 1 and 1,000 VIPs: the deepdiff path;
* the import cost of each dependency (``python -c "import X"`` minus ``python -c "pass"``);
* ``python -X importtime`` of the converged 1-VIP drift;
* apply of 10,000 VIPs side by side with ``ip -batch`` adding the same 10,000 addresses,
  each in a fresh namespace, then drift, drift with one VIP removed and rollback at that
  size;
* ``plan`` and ``drift`` of a spec holding one /16 VIP range (a local route, AnyIP) side by
  side with a spec holding one single VIP, converged and drifted (the route or the
  address removed);

then prints Markdown tables and PASS/FAIL for the performance targets. It is a measurement,
not a test: it exits 0 whatever the figures, and 1 only if the benchmark itself breaks (no
root, no ``ip``, a dsrctl command failing, a namespace that cannot be deleted).

Timing: wall time of subprocess.run (time.perf_counter), one warm-up run discarded, the
median reported. The steady-state commands (imports, drift, plan) run interleaved, in a
shuffled order each round, so a slow moment of the machine hits all of them alike; the
ratio targets are judged on the median of the per-round ratios.

Only 198.18.0.0/15 and 2001:db8::/32 are used, only inside namespaces named
``dsrb-<pid>-<n>``, which are always deleted. Specs, sysctl files, state directories and
the bytecode cache live in one temporary directory. The host's own network settings are
never touched.

    python benchmarks/run.py              # full run (10 timed runs per figure)
    python benchmarks/run.py --quick      # 3 timed runs per figure
    python benchmarks/run.py --repeat 20 --json results.json
    python benchmarks/run.py --big-only   # only the 10,000-VIP comparison
    python benchmarks/run.py --ranges-only  # only the /16 range vs single VIP figure
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import ipaddress
import json
import os
import platform
import random
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

PYTHON = sys.executable
REPO = Path(__file__).resolve().parent.parent
SIZES = (1, 100, 1000)
DRIFTED_SIZES = (1, 1000)
FULL_REPEAT = 10
QUICK_REPEAT = 3
NS_PREFIX = "dsrb"
V4_NET = ipaddress.IPv4Network("198.18.0.0/15")
V6_NET = ipaddress.IPv6Network("2001:db8::/32")
IPV6_EVERY = 4  # every 4th VIP is IPv6
# The dependencies whose import cost is reported (the list), then extras that
# explain the figures: typer 0.29 coerces CLI parameters through pydantic at run time,
# and deepdiff pulls numpy and pydantic when they are installed.
IMPORT_MODULES = ("typer", "click", "pyroute2", "rich", "tomli_w", "deepdiff", "dsrctl.cli")
EXTRA_IMPORT_MODULES = ("pydantic", "numpy")
WATCHED_MODULES = ("typer", "click", "pyroute2", "rich", "tomli_w", "deepdiff", "pydantic", "numpy")
PACKAGES = (
    "dsrctl",
    "typer",
    "click",
    "pyroute2",
    "rich",
    "tomli_w",
    "deepdiff",
    "pydantic",
    "numpy",
)
IMPORTTIME_TOP = 15
TARGET_RATIO = 1.5
TARGET_APPLY_1000_S = 3.0
BIG = 10_000  # VIPs of the big-batch comparison with ip -batch
TARGET_BIG_RATIO = 1.3
RANGE_NET = ipaddress.IPv4Network("198.19.0.0/16")  # the range figure's /16 (a local route)
TARGET_RANGE_RATIO = 1.1


class BenchmarkError(RuntimeError):
    """The benchmark itself broke (not a slow figure)."""


# The environment of every measured process; see configure_env().
CHILD_ENV: dict[str, str] = dict(os.environ)


def configure_env(pycache: Path | None) -> str:
    """Give every measured process the caller's environment, with compiled bytecode.

    With ``pycache`` set, bytecode is written to and read from that (temporary) directory
    and PYTHONDONTWRITEBYTECODE is dropped: every run then measures a compiled install, as
    after ``pip install``, without writing __pycache__ into the repository. The warm-up
    runs fill the cache. Returns a description for the report.
    """
    CHILD_ENV.clear()
    CHILD_ENV.update(os.environ)
    CHILD_ENV.pop("DSRCTL_REQUIRE_NETNS", None)
    CHILD_ENV["NO_COLOR"] = "1"
    if pycache is None:
        dont = "set" if os.environ.get("PYTHONDONTWRITEBYTECODE") else "unset"
        return f"environment as is (PYTHONDONTWRITEBYTECODE {dont})"
    CHILD_ENV.pop("PYTHONDONTWRITEBYTECODE", None)
    CHILD_ENV["PYTHONPYCACHEPREFIX"] = str(pycache)
    return "compiled, cached in a temporary PYTHONPYCACHEPREFIX"


# -- statistics -----------------------------------------------------------------------


@dataclass
class Series:
    """Wall times, in seconds, of one measured command."""

    name: str
    samples: list[float] = field(default_factory=list)
    invalid: str | None = None  # why the figure does not measure what its name says

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def minimum(self) -> float:
        return min(self.samples)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "runs": len(self.samples),
            "median_s": self.median,
            "min_s": self.minimum,
            "max_s": max(self.samples),
            "samples_s": self.samples,
            "invalid": self.invalid,
        }


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f}"


# -- running commands -----------------------------------------------------------------


def run_timed(
    cmd: Sequence[str], cwd: Path, env: dict[str, str] | None = None, expect: int = 0
) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Run a command, return its wall time; raise if its exit code is not ``expect``."""
    if not cwd.is_dir():
        raise BenchmarkError(f"{cwd} has gone (did something else clean up {cwd.parent}?)")
    start = time.perf_counter()
    proc = subprocess.run(
        list(cmd),
        env=CHILD_ENV if env is None else env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - start
    if proc.returncode != expect:
        output = proc.stderr.strip() or proc.stdout.strip()
        raise BenchmarkError(
            f"{' '.join(cmd)} exited {proc.returncode}, expected {expect}:\n{output[-2000:]}"
        )
    return elapsed, proc


def sh(*args: str) -> str:
    proc = subprocess.run(list(args), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise BenchmarkError(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
    return proc.stdout


# -- namespaces and specs -------------------------------------------------------------


def vip_addresses(count: int) -> list[str]:
    """198.18.0.1 upwards, every IPV6_EVERY-th one from 2001:db8:: instead.

    The list for k VIPs is a prefix of the list for n > k VIPs, and the first VIP is
    always 198.18.0.1.
    """
    addresses: list[str] = []
    for number in range(1, count + 1):
        if number % IPV6_EVERY == 0:
            v6 = V6_NET.network_address + number
            assert v6 in V6_NET
            addresses.append(v6.compressed)
        else:
            v4 = V4_NET.network_address + number
            assert v4 in V4_NET
            addresses.append(v4.compressed)
    return addresses


def vip_cidrs(count: int) -> set[str]:
    return {f"{a}/{128 if ':' in a else 32}" for a in vip_addresses(count)}


def spec_text(count: int, sysctl_file: Path) -> str:
    lines = [f"# dsrctl benchmark spec: {count} VIP(s)", "version = 1", ""]
    for address in vip_addresses(count):
        lines += ["[[vip]]", f'address = "{address}"', ""]
    # VIP persistence off: a benchmark must never write boot files into the host's /etc.
    lines += ["[linux.persist]", f'sysctl_file = "{sysctl_file}"', 'addresses = "none"', ""]
    return "\n".join(lines)


@dataclass
class Netns:
    """One throwaway namespace with its own spec, sysctl file and state directory."""

    name: str
    workdir: Path
    vips: int

    @property
    def spec(self) -> Path:
        return self.workdir / "dsrctl.toml"

    @property
    def env(self) -> dict[str, str]:
        return {**CHILD_ENV, "DSRCTL_STATE_DIR": str(self.workdir / "state")}

    def write_spec(self, count: int) -> None:
        self.spec.write_text(spec_text(count, self.workdir / "sysctl.d" / "90-dsrctl.conf"))

    def exec_cmd(self, *args: str) -> list[str]:
        return ["ip", "netns", "exec", self.name, *args]

    def dsrctl(self, *args: str, expect: int = 0) -> float:
        """Time the real CLI in the namespace, as an operator would run it."""
        cmd = self.exec_cmd(PYTHON, "-m", "dsrctl", *args)
        elapsed, _ = run_timed(cmd, cwd=self.workdir, env=self.env, expect=expect)
        return elapsed

    def vips_present(self) -> int:
        """How many of the spec's VIPs the kernel has on lo (asked with ip, not dsrctl)."""
        listing = sh("ip", "-n", self.name, "-o", "address", "show", "dev", "lo")
        on_lo = {line.split()[3] for line in listing.splitlines() if len(line.split()) > 3}
        return len(vip_cidrs(self.vips) & on_lo)


class Namespaces:
    """Creates namespaces and remembers every one, so that all of them get deleted."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.live: list[str] = []
        self._count = 0

    def create(self, vips: int) -> Netns:
        name = f"{NS_PREFIX}-{os.getpid()}-{self._count}"
        self._count += 1
        sh("ip", "netns", "add", name)
        self.live.append(name)
        sh("ip", "-n", name, "link", "set", "lo", "up")
        ns = Netns(name=name, workdir=self.root / name, vips=vips)
        (ns.workdir / "sysctl.d").mkdir(parents=True)
        ns.write_spec(vips)
        return ns

    def delete(self, ns: Netns) -> None:
        sh("ip", "netns", "del", ns.name)
        self.live.remove(ns.name)
        shutil.rmtree(ns.workdir, ignore_errors=True)

    def cleanup(self) -> list[str]:
        """Delete what is left; return the names of ours that still exist."""
        for name in list(self.live):
            proc = subprocess.run(
                ["ip", "netns", "del", name], capture_output=True, text=True, check=False
            )
            if proc.returncode == 0:
                self.live.remove(name)
        listing = subprocess.run(
            ["ip", "netns", "list"], capture_output=True, text=True, check=False
        ).stdout
        prefix = f"{NS_PREFIX}-{os.getpid()}-"
        return [line.split()[0] for line in listing.splitlines() if line.startswith(prefix)]

    @contextmanager
    def one(self, vips: int) -> Iterator[Netns]:
        ns = self.create(vips)
        try:
            yield ns
        finally:
            if ns.name in self.live:
                self.delete(ns)


# -- measurements ---------------------------------------------------------------------


class Logger:
    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet

    def __call__(self, text: str) -> None:
        if not self.quiet:
            print(text, file=sys.stderr, flush=True)


@dataclass
class Probe:
    """One command of a round-robin: how to run it, and where its times go."""

    series: Series
    run: Callable[[], float]


def round_robin(probes: Sequence[Probe], repeat: int, seed: int) -> None:
    """One warm-up round (discarded), then ``repeat`` rounds, each in a shuffled order.

    Every command runs once per round, so the machine's slow moments (a 2-core machine
    is noisy) hit all of them alike, and sample i of every series is from round i: the
    series can be compared pairwise.
    """
    rng = random.Random(seed)
    for round_number in range(repeat + 1):
        order = list(probes)
        rng.shuffle(order)
        for probe in order:
            elapsed = probe.run()
            if round_number > 0:
                probe.series.samples.append(elapsed)


def python_probe(name: str, code: str, cwd: Path, netns: Netns | None = None) -> Probe:
    cmd = [PYTHON, "-c", code] if netns is None else netns.exec_cmd(PYTHON, "-c", code)
    return Probe(Series(name), lambda: run_timed(cmd, cwd)[0])


def dsrctl_probe(name: str, ns: Netns, args: Sequence[str], code: int) -> Probe:
    return Probe(Series(name), lambda: ns.dsrctl(*args, expect=code))


def paired(numerator: Series, denominator: Series, ratio: bool) -> Series:
    """Per-round differences (or ratios) of two series from the same round-robin."""
    pairs = zip(numerator.samples, denominator.samples, strict=True)
    samples = [a / b if ratio else a - b for a, b in pairs]
    sign = "/" if ratio else "-"
    return Series(f"{numerator.name} {sign} {denominator.name}", samples)


def parse_importtime(stderr: str) -> list[dict[str, Any]]:
    """The ``-X importtime`` lines as dicts: module, self_us, cumulative_us, depth."""
    entries: list[dict[str, Any]] = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        parts = line[len("import time:") :].split("|")
        if len(parts) != 3:
            continue
        self_us, cumulative_us, raw_name = parts
        stripped = raw_name.rstrip()
        module = stripped.lstrip()
        entries.append(
            {
                "module": module,
                "self_us": int(self_us),
                "cumulative_us": int(cumulative_us),
                "depth": (len(stripped) - len(module) - 1) // 2,
            }
        )
    return entries


def measure_importtime(ns: Netns) -> dict[str, Any]:
    """``python -X importtime -m dsrctl drift SPEC`` once (after warm-up runs)."""
    cmd = ns.exec_cmd(PYTHON, "-X", "importtime", "-m", "dsrctl", "drift", str(ns.spec))
    elapsed, proc = run_timed(cmd, ns.workdir, env=ns.env)
    entries = parse_importtime(proc.stderr)
    top_level = [e for e in entries if e["depth"] == 0]
    imported = {e["module"] for e in entries}
    return {
        "wall_s": elapsed,
        "total_import_us": sum(e["cumulative_us"] for e in top_level),
        "modules_imported": len(entries),
        "top_level": sorted(top_level, key=lambda e: -e["cumulative_us"])[:IMPORTTIME_TOP],
        "top_overall": sorted(entries, key=lambda e: -e["cumulative_us"])[:IMPORTTIME_TOP],
        "watched_imported": [m for m in WATCHED_MODULES if m in imported],
        "watched_not_imported": [m for m in WATCHED_MODULES if m not in imported],
    }


def converge_stepwise(ns: Netns, log: Logger) -> int:
    """Bring a namespace to its full spec by applying growing specs (2, 4, 8, ... VIPs).

    Only used when one apply of the whole spec left the host unconverged, so that drift
    and plan can still be timed on a converged host. Each step at most doubles the VIPs,
    so most of the resources are already on the host. Returns the number of applies.
    """
    count, applies = 2, 0
    while True:
        step = min(count, ns.vips)
        ns.write_spec(step)  # the same spec path: the sysctl file names it
        ns.dsrctl("apply", "--auto-approve", str(ns.spec))
        applies += 1
        if step == ns.vips:
            break
        count *= 2
    present = ns.vips_present()
    if present != ns.vips:
        raise BenchmarkError(
            f"{ns.name}: even step by step, apply left {present} of {ns.vips} VIPs on lo"
        )
    log(f"  ({ns.vips:,} VIPs converged instead with {applies} growing applies)")
    return applies


def measure_apply(
    spaces: Namespaces, vips: int, repeat: int, results: dict[str, Any], log: Logger
) -> Netns:
    """Time apply in fresh namespaces; return the last one, converged."""
    apply = Series(f"apply --auto-approve ({vips} VIPs, fresh namespace)")
    size: dict[str, Any] = {"apply": apply}
    results["sizes"][str(vips)] = size
    # One warm-up apply, discarded; then one fresh namespace per timed repetition.
    with spaces.one(vips) as ns:
        ns.dsrctl("apply", "--auto-approve", str(ns.spec))
    present: list[int] = []
    for number in range(repeat):
        ns = spaces.create(vips)
        apply.samples.append(ns.dsrctl("apply", "--auto-approve", str(ns.spec)))
        # dsrctl's own verdict (exit 0, then "in sync") is not trusted: count with ip.
        present.append(ns.vips_present())
        if number < repeat - 1:
            spaces.delete(ns)
    size["vips_present_after_apply"] = present
    log(f"  apply {vips:>5,} VIPs: median {ms(apply.median)} ms")
    if min(present) != vips:
        apply.invalid = (
            f"apply exited 0 but left {min(present)} of {vips:,} VIPs on lo "
            f"(VIPs present after each run: {sorted(set(present))})"
        )
        results["problems"].append(f"apply of {vips:,} VIPs: {apply.invalid}")
        log(f"  WARNING: {apply.invalid}")
        size["stepwise_applies"] = converge_stepwise(ns, log)
    return ns


def measure_steady(
    root: Path, converged: dict[int, Netns], repeat: int, results: dict[str, Any]
) -> None:
    """Imports, and drift and plan on converged hosts, interleaved in one round-robin."""
    modules = (*IMPORT_MODULES, *EXTRA_IMPORT_MODULES)
    imports = {"pass": python_probe("python -c 'pass'", "pass", root)}
    for module in modules:
        imports[module] = python_probe(f"python -c 'import {module}'", f"import {module}", root)
    one = converged[1]
    netns_ref = {
        "pass": python_probe("ip netns exec NS python -c 'pass'", "pass", one.workdir, one),
        "pyroute2": python_probe(
            "ip netns exec NS python -c 'import pyroute2'", "import pyroute2", one.workdir, one
        ),
    }
    commands: dict[tuple[str, int], Probe] = {}
    for vips, ns in converged.items():
        for command in ("drift", "plan"):
            name = f"{command} ({vips} VIPs, converged)"
            commands[command, vips] = dsrctl_probe(name, ns, [command, str(ns.spec)], 0)
    round_robin([*imports.values(), *netns_ref.values(), *commands.values()], repeat, seed=1)
    baseline = imports.pop("pass").series
    results["imports"] = {
        "baseline": baseline,
        "wall": {module: probe.series for module, probe in imports.items()},
        # paired with the `pass` of the same round
        "cost": {module: paired(p.series, baseline, ratio=False) for module, p in imports.items()},
    }
    results["netns_reference"] = {key: probe.series for key, probe in netns_ref.items()}
    for (command, vips), probe in commands.items():
        results["sizes"][str(vips)][command] = probe.series


def measure_drifted(converged: dict[int, Netns], repeat: int, results: dict[str, Any]) -> None:
    """Remove the first VIP with ip, then time drift (which must exit 2), interleaved."""
    probes: dict[int, Probe] = {}
    for vips in DRIFTED_SIZES:
        ns = converged[vips]
        first = vip_addresses(vips)[0]
        sh("ip", "-n", ns.name, "address", "del", f"{first}/32", "dev", "lo")
        name = f"drift ({vips} VIPs, {first} removed)"
        probes[vips] = dsrctl_probe(name, ns, ["drift", str(ns.spec)], 2)
    round_robin(list(probes.values()), repeat, seed=2)
    for vips, probe in probes.items():
        results["sizes"][str(vips)]["drift_drifted"] = probe.series


def ip_batch_text(count: int) -> str:
    """The ``ip -batch`` equivalent of dsrctl's VIPs: what `apply` adds, line by line."""
    lines = []
    for address in vip_addresses(count):
        if ":" in address:  # dsrctl adds IPv6 VIPs deprecated and without DAD
            lines.append(f"address add {address}/128 dev lo preferred_lft 0 nodad")
        else:
            lines.append(f"address add {address}/32 dev lo")
    return "\n".join(lines) + "\n"


def empty_and_delete(spaces: Namespaces, ns: Netns) -> None:
    """Flush lo first: deleting a namespace with 10,000 addresses leaves the kernel busy
    removing them in the background, which would slow down the next measurement."""
    sh("ip", "-n", ns.name, "address", "flush", "dev", "lo")
    spaces.delete(ns)


def measure_big(
    spaces: Namespaces, root: Path, repeat: int, results: dict[str, Any], log: Logger
) -> None:
    """10,000 VIPs: ``ip -batch`` and ``dsrctl apply``, each in a fresh namespace, in a
    shuffled order every round; then on the applied host drift, drift with one VIP
    removed (exit 2) and rollback. One warm-up round is discarded."""
    batch = root / f"ip-batch-{BIG}.txt"
    batch.write_text(ip_batch_text(BIG))
    big: dict[str, Any] = {
        "ip_batch": Series(f"ip -batch, {BIG:,} address add (fresh namespace)"),
        "apply": Series(f"apply --auto-approve, {BIG:,} VIPs (fresh namespace)"),
        "ip_batch_cpu": Series(f"ip -batch, {BIG:,} address add: CPU time (user + sys)"),
        "apply_cpu": Series(f"apply, {BIG:,} VIPs: CPU time (user + sys)"),
        "drift": Series(f"drift, {BIG:,} VIPs (converged)"),
        "drift_drifted": Series(f"drift, {BIG:,} VIPs (1 removed)"),
        "rollback": Series(f"rollback --auto-approve, {BIG:,} VIPs"),
    }
    results["big"] = big
    rng = random.Random(3)
    first = vip_addresses(1)[0]

    def ip_round() -> dict[str, float]:
        ns = spaces.create(BIG)
        with child_cpu() as cpu:
            elapsed, _ = run_timed(ns.exec_cmd("ip", "-batch", str(batch)), ns.workdir)
        present = ns.vips_present()
        empty_and_delete(spaces, ns)
        if present != BIG:
            raise BenchmarkError(f"ip -batch left {present} of {BIG:,} addresses on lo")
        return {"ip_batch": elapsed, "ip_batch_cpu": cpu[0]}

    def dsrctl_round() -> dict[str, float]:
        ns = spaces.create(BIG)
        with child_cpu() as cpu:
            times = {"apply": ns.dsrctl("apply", "--auto-approve", str(ns.spec))}
        times["apply_cpu"] = cpu[0]
        present = ns.vips_present()  # counted with ip, not trusted from dsrctl
        if present != BIG:
            raise BenchmarkError(f"apply exited 0 but left {present} of {BIG:,} VIPs on lo")
        times["drift"] = ns.dsrctl("drift", str(ns.spec))
        sh("ip", "-n", ns.name, "address", "del", f"{first}/32", "dev", "lo")
        times["drift_drifted"] = ns.dsrctl("drift", str(ns.spec), expect=2)
        times["rollback"] = ns.dsrctl("rollback", "--auto-approve")
        left = ns.vips_present()
        empty_and_delete(spaces, ns)
        if left:
            raise BenchmarkError(f"rollback left {left} of {BIG:,} VIPs on lo")
        return times

    for round_number in range(repeat + 1):
        order = [ip_round, dsrctl_round]
        rng.shuffle(order)
        for measure in order:
            for key, elapsed in measure().items():
                if round_number > 0:
                    big[key].samples.append(elapsed)
        label = "warm-up" if round_number == 0 else f"{round_number}/{repeat}"
        done = big["apply"].samples and big["ip_batch"].samples
        if done:
            ratio = big["apply"].samples[-1] / big["ip_batch"].samples[-1]
            log(f"  round {label}: apply/ip -batch {ratio:.2f} x")
        else:
            log(f"  round {label}")
    big["ratio"] = paired(big["apply"], big["ip_batch"], ratio=True)
    big["cpu_ratio"] = paired(big["apply_cpu"], big["ip_batch_cpu"], ratio=True)


@contextmanager
def child_cpu() -> Iterator[list[float]]:
    """CPU time (user + system) of the child processes waited for inside the block: the
    same comparison as wall time, but insensitive to other load on the machine."""
    result = [0.0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    yield result
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    result[0] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def range_spec_text(sysctl_file: Path) -> str:
    lines = [
        f"# dsrctl benchmark spec: one /{RANGE_NET.prefixlen} range",
        "version = 1",
        "",
        "[[vip]]",
        f'address = "{RANGE_NET.network_address}"',
        f"prefix = {RANGE_NET.prefixlen}",
        "",
        "[linux.persist]",
        f'sysctl_file = "{sysctl_file}"',
        'addresses = "none"',
        "",
    ]
    return "\n".join(lines)


def range_present(ns: Netns) -> bool:
    listing = sh("ip", "-n", ns.name, "route", "show", "table", "local", "type", "local")
    return any(line.split()[1:2] == [str(RANGE_NET)] for line in listing.splitlines())


def measure_ranges(spaces: Namespaces, repeat: int, results: dict[str, Any], log: Logger) -> None:
    """plan and drift of one /16 range vs one single VIP, converged then drifted, each pair
    in one round-robin (the ratio targets are judged per round)."""
    single = spaces.create(1)
    ranged = spaces.create(1)
    ranged.spec.write_text(range_spec_text(ranged.workdir / "sysctl.d" / "90-dsrctl.conf"))
    for ns in (single, ranged):
        ns.dsrctl("apply", "--auto-approve", str(ns.spec))
    problems = results["problems"]
    if single.vips_present() != 1:
        problems.append("range figure: apply did not add the single VIP")
    if not range_present(ranged):
        problems.append(f"range figure: apply did not add the local route {RANGE_NET}")
    figures: dict[str, dict[str, Series]] = {"single": {}, "range": {}}
    hosts = {"single": single, "range": ranged}
    log(f"/{RANGE_NET.prefixlen} range vs single VIP, converged: {repeat} shuffled rounds ...")
    probes = {
        (who, command): dsrctl_probe(
            f"{command} ({who}, converged)", ns, [command, str(ns.spec)], 0
        )
        for who, ns in hosts.items()
        for command in ("plan", "drift")
    }
    round_robin(list(probes.values()), repeat, seed=3)
    for (who, command), probe in probes.items():
        figures[who][command] = probe.series
    sh("ip", "-n", single.name, "address", "del", f"{vip_addresses(1)[0]}/32", "dev", "lo")
    sh("ip", "-n", ranged.name, "route", "del", "local", str(RANGE_NET), "dev", "lo",
       "table", "local")  # fmt: skip
    log(f"/{RANGE_NET.prefixlen} range vs single VIP, drifted: {repeat} shuffled rounds ...")
    drifted = {
        who: dsrctl_probe(f"drift ({who}, drifted)", ns, ["drift", str(ns.spec)], 2)
        for who, ns in hosts.items()
    }
    round_robin(list(drifted.values()), repeat, seed=4)
    for who, probe in drifted.items():
        figures[who]["drift_drifted"] = probe.series
    results["ranges"] = figures
    for ns in (single, ranged):
        spaces.delete(ns)


def markdown_ranges(figures: dict[str, dict[str, Series]]) -> list[str]:
    out = [
        f"One /{RANGE_NET.prefixlen} range ({RANGE_NET}, one local route) vs one single VIP "
        f"({vip_addresses(1)[0]}/32), same round-robin:",
        "",
        "| Command | Host | Single VIP, median (ms) | /16 range, median (ms) | Range / single, "
        "per round (median) |",
        "|---|---|---:|---:|---:|",
    ]
    rows = (
        ("plan", "`plan`", "converged"),
        ("drift", "`drift`", "converged"),
        ("drift_drifted", "`drift`", "drifted (exit 2)"),
    )
    for key, label, host in rows:
        single, ranged = figures["single"][key], figures["range"][key]
        ratio = paired(ranged, single, ratio=True)
        out.append(
            f"| {label} | {host} | {ms(single.median)} | {ms(ranged.median)} | "
            f"{ratio.median:.2f} x |"
        )
    out.append("")
    return out


# -- reporting ------------------------------------------------------------------------


def check_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Targets 1, 2 and 4 compare series from one round-robin: judged on per-round ratios."""
    checks: list[tuple[int, str, Series, Series | None, float]] = []
    sizes = results["sizes"]
    if sizes:
        drift_1: Series = sizes["1"]["drift"]
        drift_1000: Series = sizes["1000"]["drift"]
        apply_1000: Series = sizes["1000"]["apply"]
        pyroute2: Series = results["imports"]["wall"]["pyroute2"]
        checks += [
            (
                1,
                'drift (converged, 1 VIP) <= 1.5 x python -c "import pyroute2"',
                drift_1,
                pyroute2,
                TARGET_RATIO,
            ),
            (
                2,
                "drift (converged, 1,000 VIPs) <= 1.5 x drift (converged, 1 VIP)",
                drift_1000,
                drift_1,
                TARGET_RATIO,
            ),
            (
                3,
                "apply of 1,000 VIPs (fresh namespace) < 3 s",
                apply_1000,
                None,
                TARGET_APPLY_1000_S,
            ),
        ]
    if "big" in results:
        big = results["big"]
        checks.append(
            (
                4,
                f"apply of {BIG:,} VIPs <= {TARGET_BIG_RATIO} x ip -batch of the same "
                f"{BIG:,} address add (fresh namespaces)",
                big["apply"],
                big["ip_batch"],
                TARGET_BIG_RATIO,
            )
        )
    if "ranges" in results:
        figures = results["ranges"]
        for number, (key, what) in enumerate(
            (("plan", "plan"), ("drift", "drift"), ("drift_drifted", "drift (drifted)")), start=5
        ):
            checks.append(
                (
                    number,
                    f"{what} of a /{RANGE_NET.prefixlen} range <= {TARGET_RANGE_RATIO} x {what} "
                    "of a single VIP",
                    figures["range"][key],
                    figures["single"][key],
                    TARGET_RANGE_RATIO,
                )
            )
    targets = []
    for number, what, series, reference, limit in checks:
        if reference is None:
            value, fast = series.median, series.median < limit
            detail = f"median {ms(series.median)} ms, limit {ms(limit)} ms"
        else:
            value = paired(series, reference, ratio=True).median
            fast = value <= limit
            detail = (
                f"{value:.2f} x (median of per-round ratios; limit {limit} x): "
                f"median {ms(series.median)} ms vs {ms(reference.median)} ms"
            )
        targets.append(
            {
                "target": number,
                "what": what,
                "value": value,
                "limit": limit,
                "detail": detail,
                "invalid": series.invalid,
                # A figure that does not measure the real work cannot pass.
                "pass": fast and series.invalid is None,
            }
        )
    return targets


def target_lines(results: dict[str, Any]) -> list[str]:
    lines = []
    for target in results["targets"]:
        verdict = "PASS" if target["pass"] else "FAIL"
        line = f"{verdict}  target {target['target']}: {target['what']}: {target['detail']}"
        if target["invalid"]:
            line += f" [invalid figure: {target['invalid']}]"
        lines.append(line)
    return lines


def markdown(results: dict[str, Any]) -> str:
    meta = results["meta"]
    out = [
        f"## dsrctl benchmark, {meta['date']} ({meta['cpus']} CPUs, Linux {meta['kernel']}, "
        f"Python {meta['python_version']}, {meta['repeat']} timed runs per figure)",
        "",
        f"dsrctl at {meta['git']}; "
        + ", ".join(f"{name} {version}" for name, version in meta["packages"].items())
        + ".",
        f"Bytecode: {meta['bytecode']}. Load average (1 min): {meta['loadavg_start']} at start, "
        f"{meta['loadavg_end']} at end.",
        "",
    ]
    if results["sizes"]:
        out += markdown_sizes(results)
    if "big" in results:
        out += markdown_big(results["big"])
    if "ranges" in results:
        out += markdown_ranges(results["ranges"])
    if results["problems"]:
        out += ["Problems found while measuring:", ""]
        out += [f"- {problem}" for problem in results["problems"]]
        out.append("")
    out += ["Targets:", "", "```", *target_lines(results), "```"]
    return "\n".join(out)


def markdown_big(big: dict[str, Any]) -> list[str]:
    out = [
        f"{BIG:,} VIPs (every {IPV6_EVERY}th IPv6), each apply and each `ip -batch` in a fresh "
        "namespace, shuffled order every round; drift and rollback on the applied host:",
        "",
        "| Command | Median (ms) | Min (ms) | Runs |",
        "|---|---:|---:|---:|",
    ]
    rows = (
        ("ip_batch", f"`ip -batch` ({BIG:,} x `address add`)"),
        ("apply", "`dsrctl apply --auto-approve`"),
        ("ip_batch_cpu", "`ip -batch`: CPU time, user + sys"),
        ("apply_cpu", "`dsrctl apply`: CPU time, user + sys"),
        ("drift", "`dsrctl drift` (converged)"),
        ("drift_drifted", "`dsrctl drift` (1 VIP removed, exit 2)"),
        ("rollback", "`dsrctl rollback --auto-approve`"),
    )
    for key, label in rows:
        series: Series = big[key]
        out.append(
            f"| {label} | {ms(series.median)} | {ms(series.minimum)} | {len(series.samples)} |"
        )
    out.append("")
    for key, what in (("ratio", "wall time"), ("cpu_ratio", "CPU time")):
        ratio: Series = big[key]
        out.append(
            f"apply / `ip -batch`, {what}, per round: median {ratio.median:.2f} x, "
            f"min {ratio.minimum:.2f} x, max {max(ratio.samples):.2f} x."
        )
    out.append("")
    return out


def markdown_sizes(results: dict[str, Any]) -> list[str]:
    out = [
        "| Command | VIPs | Host | Median (ms) | Min (ms) | Runs |",
        "|---|---:|---|---:|---:|---:|",
    ]
    rows = (
        ("apply", "`apply --auto-approve`", "fresh namespace"),
        ("drift", "`drift`", "converged"),
        ("plan", "`plan`", "converged"),
        ("drift_drifted", "`drift`", "drifted (1 VIP removed)"),
    )
    for key, label, host in rows:
        for vips, size in results["sizes"].items():
            if key in size:
                series: Series = size[key]
                flag = " **(invalid, see problems)**" if series.invalid else ""
                out.append(
                    f"| {label} | {int(vips):,} | {host}{flag} | {ms(series.median)} | "
                    f"{ms(series.minimum)} | {len(series.samples)} |"
                )
    imports = results["imports"]
    baseline: Series = imports["baseline"]
    out += [
        "",
        '| `python -c "import X"` | Median wall (ms) | Import cost: minus `pass` (ms) |',
        "|---|---:|---:|",
        f'| `python -c "pass"` (interpreter start) | {ms(baseline.median)} | - |',
    ]
    for module, series in imports["wall"].items():
        extra = " (extra)" if module in EXTRA_IMPORT_MODULES else ""
        cost: Series = imports["cost"][module]
        out.append(f"| `{module}`{extra} | {ms(series.median)} | {ms(cost.median)} |")
    for key, series in results["netns_reference"].items():
        code = "pass" if key == "pass" else f"import {key}"
        out.append(
            f'| `ip netns exec NS python -c "{code}"` (informational) | {ms(series.median)} | - |'
        )
    it = results["importtime_drift_1"]
    out += [
        "",
        f"`python -X importtime -m dsrctl drift` (converged, 1 VIP): {it['modules_imported']} "
        f"modules, {it['total_import_us'] / 1000:.0f} ms of imports in a {ms(it['wall_s'])} ms "
        "run (importtime itself slows the run down). Top-level imports by cumulative time:",
        "",
        "| Module (top level) | Cumulative (ms) | Self (ms) |",
        "|---|---:|---:|",
    ]
    for e in it["top_level"]:
        out.append(
            f"| `{e['module']}` | {e['cumulative_us'] / 1000:.1f} | {e['self_us'] / 1000:.1f} |"
        )
    out += [
        "",
        "All modules by cumulative time:",
        "",
        "| Module | Depth | Cumulative (ms) | Self (ms) |",
        "|---|---:|---:|---:|",
    ]
    for e in it["top_overall"]:
        out.append(
            f"| `{e['module']}` | {e['depth']} | {e['cumulative_us'] / 1000:.1f} | "
            f"{e['self_us'] / 1000:.1f} |"
        )
    out += [
        "",
        "Imported on this path: "
        + (", ".join(it["watched_imported"]) or "none of the watched modules")
        + "; not imported: "
        + (", ".join(it["watched_not_imported"]) or "-")
        + ".",
        "",
    ]
    return out


def to_json(value: Any) -> Any:
    if isinstance(value, Series):
        return value.to_json()
    if isinstance(value, dict):
        return {key: to_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(item) for item in value]
    return value


# -- main -----------------------------------------------------------------------------


def preflight() -> None:
    if sys.platform != "linux":
        raise BenchmarkError("needs Linux network namespaces")
    if os.geteuid() != 0:
        raise BenchmarkError("needs root (ip netns add)")
    if shutil.which("ip") is None:
        raise BenchmarkError("needs iproute2 (ip)")
    probe = subprocess.run(
        [PYTHON, "-c", "import dsrctl.cli"], capture_output=True, text=True, check=False
    )
    if probe.returncode != 0:
        raise BenchmarkError(f"{PYTHON} cannot import dsrctl: {probe.stderr.strip()}")


def describe_code() -> str:
    """The commit of this repository, and whether the work tree differs from it."""
    head = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    if head.returncode != 0:
        return "(not a git checkout)"
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return f"commit {head.stdout.strip()}" + (" with uncommitted changes" if dirty else "")


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def loadavg() -> float:
    return round(os.getloadavg()[0], 2)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark dsrctl plan/drift/apply in throwaway network namespaces."
    )
    parser.add_argument(
        "--quick", action="store_true", help=f"{QUICK_REPEAT} timed runs per figure"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        metavar="N",
        help=f"timed runs per figure (default {FULL_REPEAT}, {QUICK_REPEAT} with --quick)",
    )
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument(
        "--env-as-is",
        action="store_true",
        help="run dsrctl with the environment unchanged (by default bytecode is compiled "
        "into a temporary cache even if PYTHONDONTWRITEBYTECODE is set)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    parser.add_argument(
        "--big-only",
        action="store_true",
        help=f"only the {BIG:,}-VIP comparison of apply with ip -batch (and drift, rollback)",
    )
    parser.add_argument("--no-big", action="store_true", help=f"skip the {BIG:,}-VIP comparison")
    parser.add_argument(
        "--ranges-only",
        action="store_true",
        help=f"only plan and drift of a /{RANGE_NET.prefixlen} VIP range vs a single VIP",
    )
    parser.add_argument(
        "--no-ranges", action="store_true", help="skip the VIP range vs single VIP figure"
    )
    args = parser.parse_args(argv)
    if args.repeat is None:
        args.repeat = QUICK_REPEAT if args.quick else FULL_REPEAT
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.big_only and args.no_big:
        parser.error("--big-only and --no-big exclude each other")
    if args.ranges_only and (args.big_only or args.no_ranges):
        parser.error("--ranges-only excludes --big-only and --no-ranges")
    return args


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally blocks: namespaces go


def measure_sizes(
    args: argparse.Namespace, root: Path, spaces: Namespaces, results: dict[str, Any], log: Logger
) -> None:
    converged: dict[int, Netns] = {}
    for vips in SIZES:
        log(f"apply, {vips:,} VIP(s): {args.repeat} fresh namespaces ...")
        converged[vips] = measure_apply(spaces, vips, args.repeat, results, log)
    # A warm-up drift, then -X importtime once, before the round-robins.
    converged[1].dsrctl("drift", str(converged[1].spec))
    results["importtime_drift_1"] = measure_importtime(converged[1])
    log(f"imports, drift and plan (converged): {args.repeat} shuffled rounds ...")
    measure_steady(root, converged, args.repeat, results)
    log(f"drift (one VIP removed): {args.repeat} shuffled rounds ...")
    measure_drifted(converged, args.repeat, results)
    for ns in converged.values():
        spaces.delete(ns)


def run(args: argparse.Namespace, root: Path, spaces: Namespaces, log: Logger) -> dict[str, Any]:
    bytecode = configure_env(None if args.env_as_is else root / "pycache")
    results: dict[str, Any] = {
        "meta": {
            "date": datetime.date.today().isoformat(),
            "python": PYTHON,
            "python_version": platform.python_version(),
            "kernel": platform.release(),
            "cpus": os.cpu_count(),
            "repeat": args.repeat,
            "git": describe_code(),
            "packages": package_versions(),
            "bytecode": bytecode,
            "vip_ranges": [str(V4_NET), str(V6_NET)],
            "loadavg_start": loadavg(),
        },
        "sizes": {},
        "problems": [],
    }
    if not (args.big_only or args.ranges_only):
        measure_sizes(args, root, spaces, results, log)
    if not (args.no_big or args.ranges_only):
        log(f"{BIG:,} VIPs, apply vs ip -batch: {args.repeat} shuffled rounds + 1 warm-up ...")
        measure_big(spaces, root, args.repeat, results, log)
    if not (args.no_ranges or args.big_only):
        measure_ranges(spaces, args.repeat, results, log)
    results["meta"]["loadavg_end"] = loadavg()
    results["targets"] = check_targets(results)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    log = Logger(args.quiet)
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)
    try:
        preflight()
    except BenchmarkError as exc:
        print(f"benchmark: {exc}", file=sys.stderr)
        return 1
    root = Path(tempfile.mkdtemp(prefix=f"{NS_PREFIX}-bench-"))
    spaces = Namespaces(root)
    try:
        results = run(args, root, spaces, log)
    except BenchmarkError as exc:
        print(f"benchmark broke: {exc}", file=sys.stderr)
        return 1
    finally:
        leftover = spaces.cleanup()
        shutil.rmtree(root, ignore_errors=True)
        if leftover:
            print(f"benchmark: could not delete namespaces {leftover}", file=sys.stderr)
    print(markdown(results))
    if args.json:
        Path(args.json).write_text(json.dumps(to_json(results), indent=2) + "\n")
        log(f"results written to {args.json}")
    return 1 if leftover else 0


if __name__ == "__main__":
    sys.exit(main())

"""Boot a distribution kernel under qemu (virtme-ng) and run a batch of steps inside it.

This machine's kernel lacks ipip, gre, fou, ip6tnl and IPVS; the Debian kernel from the
`linux-image-amd64` package has them. One call of `run()` is one boot: it writes a guest
script into a fresh host directory, boots the newest /boot/vmlinuz-* with `vng` under
software emulation (KVM hangs here), runs every step in order inside the guest (each with
its own timeout, its stdout, stderr and exit code kept apart), powers off and returns the
results. Boots cost tens of seconds, so put all the work of a test module into one boot
(a module-scoped fixture) and let the tests assert on its results.

Inside the guest the host's root filesystem is shared read-only over 9p (virtme-ng's
default: /tmp, /etc, /var, /usr... get a tmpfs overlay, so guest writes there vanish at
power-off); the repository and the test interpreter's prefix are mounted again with
`cache=loose`, which makes Python about 5x faster there than on the uncached root. The
only host directory the guest can write to is the per-boot work directory, which `run()`
deletes. Namespaces, links and modules created inside live and die with the guest.

A test fails, never skips, when the kernel, qemu or vng is missing: install them with the
README's test command.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# Modules that udev's coldplug would load for qemu's emulated hardware and that the tests
# never need; kvm_amd/kvm_intel alone cost up to 15 s of emulated CPU time at boot.
_MODULE_BLACKLIST = ",".join(
    [
        "kvm", "kvm_amd", "kvm_intel", "irqbypass", "ccp", "sr_mod", "cdrom", "sg",
        "iTCO_wdt", "iTCO_vendor_support", "intel_pmc_bxt", "evdev", "psmouse",
        "serio_raw", "ahci", "libahci", "libata", "i2c_i801", "i2c_smbus", "pcspkr",
        "lpc_ich", "button", "qemu_fw_cfg", "crct10dif_pclmul", "crc32_pclmul",
        "ghash_clmulni_intel", "sha512_ssse3", "sha256_ssse3", "sha1_ssse3",
        "aesni_intel", "crypto_simd", "cryptd",
    ]
)  # fmt: skip

# A second 9p export of the host root, which the guest script mounts with cache=loose.
_CACHED_TAG = "dsrctlroot"
_CACHED_ROOT = "/run/dsrctl-host"  # where the guest mounts it
_SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_QEMU_OPTS = (
    f"-fsdev local,id=dsrctlfs,path=/,security_model=none,readonly=on,multidevs=remap "
    f"-device virtio-9p-pci,fsdev=dsrctlfs,mount_tag={_CACHED_TAG}"
)

DEFAULT_TIMEOUT = 900.0  # the whole boot, on a loaded 2-CPU CI machine
DEFAULT_STEP_TIMEOUT = 300.0


class VMError(AssertionError):
    """The VM could not be booted or did not finish its script (not a step failing)."""


@dataclass(frozen=True)
class Python:
    """A step that runs a Python snippet with the test interpreter, the repo on sys.path."""

    code: str


@dataclass(frozen=True)
class Result:
    name: str
    command: str
    returncode: int
    stdout: str
    stderr: str
    seconds: float  # measured inside the guest

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def check(self) -> Result:
        """Return self if the step exited 0, else fail with its command and output."""
        if self.returncode != 0:
            raise AssertionError(self.describe())
        return self

    def describe(self) -> str:
        return (
            f"VM step {self.name!r} exited {self.returncode} after {self.seconds:.1f} s\n"
            f"$ {self.command}\n--- stdout\n{self.stdout}--- stderr\n{self.stderr}"
        )


@dataclass
class Boot:
    kernel: Path
    results: dict[str, Result]
    wall_seconds: float  # from starting vng to its exit
    guest_uptime_at_start: float  # guest clock when the first step started
    console: str = field(repr=False)  # vng's own stdout/stderr (kernel log, init errors)

    def __getitem__(self, name: str) -> Result:
        return self.results[name]

    @property
    def overhead_seconds(self) -> float:
        """Wall time not spent in steps: boot, mounts, power-off."""
        return self.wall_seconds - sum(r.seconds for r in self.results.values())


def find_kernel() -> Path:
    """The newest installed distribution kernel, /boot/vmlinuz-<version>."""
    kernels = [p for p in Path("/boot").glob("vmlinuz-*") if p.is_file()]
    if not kernels:
        raise VMError(
            "no /boot/vmlinuz-* found: the VM tier needs a distribution kernel "
            "(apt-get install linux-image-amd64 qemu-system-x86 busybox-static, see README)"
        )

    def version_key(p: Path) -> tuple[tuple[int, int | str], ...]:
        parts = re.findall(r"\d+|[^\d.\-]+", p.name.removeprefix("vmlinuz-"))
        return tuple((0, int(x)) if x.isdigit() else (1, x) for x in parts)

    return max(kernels, key=version_key)


def find_vng() -> str:
    """vng from PATH or next to the test interpreter (pip installs it there)."""
    here = Path(sys.executable).parent / "vng"
    found = shutil.which("vng") or (str(here) if here.exists() else None)
    if found is None:
        raise VMError("vng not found: pip install -e '.[test]' installs virtme-ng")
    for tool in ("qemu-system-x86_64", "busybox"):
        if shutil.which(tool) is None and not Path("/bin", tool).exists():
            raise VMError(f"{tool} not found: see the README's test command")
    return found


def _guest_prelude(work: Path) -> str:
    interpreter_dir = Path(sys.executable).parent
    prefixes = sorted({sys.prefix, sys.base_prefix, str(REPO)})
    binds = "\n".join(
        f"[ -d {shlex.quote(p)} ] && mount --bind {_CACHED_ROOT}{shlex.quote(p)} {shlex.quote(p)}"
        for p in prefixes
    )
    return f"""\
set -u
exec 2>{work}/runner.err
mkdir -p {_CACHED_ROOT}
mount -t 9p -o trans=virtio,version=9p2000.L,cache=loose,msize=524288,ro,access=any \\
    {_CACHED_TAG} {_CACHED_ROOT} || echo "no cached mount, Python will be slow" >&2
if mountpoint -q {_CACHED_ROOT}; then
{binds}
fi
export PATH={shlex.quote(str(interpreter_dir))}:{_SYSTEM_PATH}
export PYTHONPATH={shlex.quote(str(REPO))} PYTHONDONTWRITEBYTECODE=1 HOME=/root
cut -d' ' -f1 /proc/uptime > {work}/uptime
"""


def _step_command(step: str | Python, work: Path, index: int) -> str:
    if isinstance(step, Python):
        script = work / f"step{index}.py"
        script.write_text(step.code)
        return f"{shlex.quote(sys.executable)} {script}"
    return step


def run(
    steps: Mapping[str, str | Python],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    step_timeout: float = DEFAULT_STEP_TIMEOUT,
    stop_on_error: bool = False,
    memory: str = "1G",
) -> Boot:
    """Boot once, run `steps` (name -> shell command or Python) in order, return results.

    Each shell step runs with `bash -e -o pipefail`, from the repository's root, as root,
    with the test interpreter first on PATH (so `python3` and `dsrctl` are this
    checkout's). A step that exceeds `step_timeout` is killed and gets exit code 124.
    With `stop_on_error`, the steps after a failing one do not run and are missing from
    the results. Exceeding `timeout` (boot included) kills qemu and raises VMError.
    """
    kernel = find_kernel()
    vng = find_vng()
    work = Path(tempfile.mkdtemp(prefix="dsrctl-vm-"))
    try:
        lines = [_guest_prelude(work)]
        for index, step in enumerate(steps.values()):
            command = _step_command(step, work, index)
            (work / f"step{index}.sh").write_text(command + "\n")
            lines.append(
                f"cd {shlex.quote(str(REPO))}\n"
                f"s=$(date +%s%N)\n"
                f"timeout -k 5 {step_timeout:g} bash -e -o pipefail {work}/step{index}.sh"
                f" </dev/null >{work}/{index}.out 2>{work}/{index}.err\n"
                f"rc=$?\n"
                f"echo $rc $(( $(date +%s%N) - s )) >{work}/{index}.rc\n"
                + (f"[ $rc -eq 0 ] || {{ : >{work}/done; exit 0; }}\n" if stop_on_error else "")
            )
        lines.append(f": >{work}/done\n")
        (work / "runner.sh").write_text("".join(lines))

        vng_command = [
            vng, "--run", str(kernel), "--disable-kvm", "--force-9p", "--user", "root",
            "--memory", memory, "--rwdir", str(work),
            "--append", f"module_blacklist={_MODULE_BLACKLIST}",
            f"--qemu-opts={_QEMU_OPTS}",
            "--exec", f"bash {work}/runner.sh",
        ]  # fmt: skip
        started = time.monotonic()
        process = subprocess.Popen(
            vng_command,
            cwd=work,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=True,  # so a timeout kills vng, qemu and virtiofsd together
        )
        try:
            console, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            console, _ = process.communicate()
            raise VMError(
                f"VM did not finish within {timeout:g} s\n{_tail(console)}\n{_runner_err(work)}"
            ) from None
        wall = time.monotonic() - started
        if not (work / "done").exists():
            raise VMError(
                f"VM script did not finish (vng exit {process.returncode}):\n"
                f"{_tail(console)}\n{_runner_err(work)}"
            )
        results: dict[str, Result] = {}
        for index, name in enumerate(steps):
            rc_file = work / f"{index}.rc"
            if not rc_file.exists():
                break
            rc, ns = rc_file.read_text().split()
            results[name] = Result(
                name=name,
                command=_shown(steps[name], work / f"step{index}.sh"),
                returncode=int(rc),
                stdout=(work / f"{index}.out").read_text(errors="replace"),
                stderr=(work / f"{index}.err").read_text(errors="replace"),
                seconds=int(ns) / 1e9,
            )
        uptime = float((work / "uptime").read_text() or "nan")
        return Boot(kernel, results, wall, uptime, console)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _shown(step: str | Python, script: Path) -> str:
    if isinstance(step, Python):
        return f"{sys.executable} - <<'EOF'\n{step.code.rstrip()}\nEOF"
    return script.read_text().rstrip("\n")


def _tail(text: str, lines: int = 40) -> str:
    return "--- vng output (tail)\n" + "\n".join(text.splitlines()[-lines:])


def _runner_err(work: Path) -> str:
    err = work / "runner.err"
    return "--- guest runner stderr\n" + (err.read_text(errors="replace") if err.exists() else "")

"""The TOML spec: load, validate, canonicalise.

Everything here is pure (no host access): a spec that passes :func:`load_spec` is valid
in itself. Checks that need the host (does this sysctl exist?) ask the provider, and
run before anything is read or changed (``dsrctl.platforms.check_spec``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import ipaddress
import os
import stat
import string
import tomllib
import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dsrctl import sysctls
from dsrctl.errors import MISSING, SpecError
from dsrctl.schema import Table, join_key
from dsrctl.tunnels import TUNNEL_ON_WINDOWS, TunnelSpec, parse_tunnels
from providers.linux.persist.backends import ALIASES, BACKENDS

if TYPE_CHECKING:
    from dsrctl.windows.spec import WindowsSpec

SPEC_VERSION = 1
DEFAULT_SYSCTL_FILE = "/etc/sysctl.d/90-dsrctl.conf"
# linux.persist.addresses: how the VIPs come back after a reboot (docs/persistence/)
# (the backends' names are their registry's: providers/linux/persist/backends.py)
ADDRESS_BACKENDS = ("auto", "none", *BACKENDS)
# Other names a spec may use; the spec keeps the canonical one (old specs keep working).
BACKEND_ALIASES = ALIASES
IFNAMSIZ = 16  # including the terminating NUL: names are at most 15 characters
# Interface names and labels reach systemd units (ExecStart= words, specifiers), ifupdown
# stanzas (which ifupdown pastes into `sh -c` commands), ifcfg files (sourced by sh),
# keyfiles, YAML and file names. These characters mean nothing in any of those syntaxes;
# the kernel takes more, but nothing else is needed to name a device or an alias.
NAME_CHARACTERS = frozenset(string.ascii_letters + string.digits + "_.-")
LABEL_CHARACTERS = NAME_CHARACTERS | {":"}  # lo:1: ip(8), ifupdown and ifcfg alias syntax
# Characters that can end a line or hide text in a generated file or a one-line error:
# C0/C1 controls and DEL (Cc), format characters such as bidi overrides (Cf), the Unicode
# line and paragraph separators (Zl, Zp: YAML 1.1 and str.splitlines break lines at them),
# and lone surrogates (Cs: the undecodable bytes of a file name, not writable as UTF-8).
CONTROL_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
MAX_SPEC_BYTES = 1 << 20  # a spec is a few KiB; refuse to read /dev/zero into memory
INT64 = range(-(2**63), 2**63)  # TOML integers are 64-bit signed

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_LIMITED_BROADCAST = ipaddress.IPv4Address("255.255.255.255")


@dataclass(frozen=True)
class Vip:
    address: IPAddress
    prefix: int
    label: str | None = None

    @property
    def sort_key(self) -> tuple[int, int]:
        """IPv4 before IPv6, then numerically."""
        return (self.address.version, int(self.address))

    @property
    def version(self) -> int:
        return self.address.version

    @property
    def cidr(self) -> str:
        return f"{self.address.compressed}/{self.prefix}"

    @property
    def is_range(self) -> bool:
        """A prefix shorter than the address's length: a whole range served through one
        local route on the interface (AnyIP), not an address."""
        return self.prefix < self.address.max_prefixlen

    @property
    def network(self) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        return ipaddress.ip_network(self.cidr)


@dataclass(frozen=True)
class Persist:
    enabled: bool = True
    sysctl_file: str = DEFAULT_SYSCTL_FILE
    addresses: str = "auto"
    root: str = "/"  # the tree the persistent files live in (an image, a test directory)


@dataclass(frozen=True)
class LinuxSpec:
    interface: str = "lo"
    arp_ignore: int = 1
    arp_announce: int = 2
    sysctl: tuple[tuple[str, int | str], ...] = ()
    persist: Persist = Persist()

    def all_sysctls(self) -> dict[str, int | str]:
        """Every sysctl the spec asks for, canonical key -> value (ARP keys first)."""
        values: dict[str, int | str] = {
            sysctls.ARP_IGNORE_KEY: self.arp_ignore,
            sysctls.ARP_ANNOUNCE_KEY: self.arp_announce,
        }
        values.update(self.sysctl)
        return values


@dataclass(frozen=True)
class Spec:
    path: str
    version: int
    vips: tuple[Vip, ...]
    linux: LinuxSpec
    warnings: tuple[str, ...] = ()
    windows: WindowsSpec | None = None  # the [windows] table, when the spec has one
    digest: str = ""  # sha256 of the file's bytes: saved plans and the journal name it
    tunnels: tuple[TunnelSpec, ...] = ()  # the [[tunnel]] tables (dsrctl/tunnels.py)


def load_spec(path: str) -> Spec:
    problem = spec_path_problem(path)
    if problem:
        raise SpecError(escape_controls(path), "", MISSING, problem)
    raw = _read_spec(path)
    try:
        text = raw.decode("utf-8").removeprefix("\ufeff")  # Notepad writes a BOM
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(path, "", MISSING, f"invalid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise SpecError(path, "", MISSING, f"invalid TOML: not UTF-8 ({exc.reason})") from None
    except RecursionError:
        # tomllib parses nested arrays and inline tables recursively.
        reason = "invalid TOML: arrays or inline tables nested too deeply"
        raise SpecError(path, "", MISSING, reason) from None
    except ValueError:
        # tomllib converts decimal integers with int(), which refuses more than 4300 digits.
        reason = "invalid TOML: an integer too large to read (TOML integers are 64-bit)"
        raise SpecError(path, "", MISSING, reason) from None
    _check_integers(data, path)
    try:
        spec = parse_spec(data, path)
    except SpecError as exc:
        raise _one_line(exc) from None
    return dataclasses.replace(spec, digest=hashlib.sha256(raw).hexdigest())


def _read_spec(path: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            mode = os.fstat(handle.fileno()).st_mode
            # A FIFO is fine (`dsrctl validate <(...)`); a device is never a spec.
            if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode)):
                raise SpecError(path, "", MISSING, "not a regular file")
            raw = handle.read(MAX_SPEC_BYTES + 1)
    except FileNotFoundError:
        raise SpecError(path, "", MISSING, "spec file not found") from None
    except PermissionError:
        raise SpecError(path, "", MISSING, "cannot read spec file: permission denied") from None
    except IsADirectoryError:
        raise SpecError(path, "", MISSING, "is a directory, not a spec file") from None
    except OSError as exc:
        reason = f"cannot read spec file: {exc.strerror or type(exc).__name__}"
        raise SpecError(path, "", MISSING, reason) from None
    if len(raw) > MAX_SPEC_BYTES:
        raise SpecError(path, "", MISSING, f"larger than {MAX_SPEC_BYTES} bytes; not a spec")
    return raw


def control_characters(text: str) -> list[str]:
    """The characters of ``text`` that must never reach a generated file, as repr()s."""
    found = {char for char in text if unicodedata.category(char) in CONTROL_CATEGORIES}
    return sorted(repr(char) for char in found)


def escape_controls(text: str) -> str:
    """``text`` with every control character written as a Python escape (one line)."""
    return "".join(
        repr(char)[1:-1] if unicodedata.category(char) in CONTROL_CATEGORIES else char
        for char in text
    )


def spec_path_problem(path: str) -> str | None:
    """Why the spec's path cannot be used: it is written, made absolute, into the header
    of every file dsrctl generates, where a line break would start a line of its own."""
    candidates = [path]
    # abspath() is what the headers name; without a working directory, the path is all.
    with contextlib.suppress(OSError):
        candidates.append(os.path.abspath(path))
    for text in candidates:
        found = control_characters(text)
        if found:
            return (
                f"the spec's path contains {', '.join(found)} (control characters or bytes "
                "that are not UTF-8), which would break the header of every file dsrctl "
                "writes; rename the file or its directory"
            )
    return None


def _one_line(error: SpecError) -> SpecError:
    """The error with control characters of keys and values escaped: one line on stderr."""
    text = str(error)
    clean = escape_controls(text)
    if clean != text:
        error.args = (clean,)
    return error


def _check_integers(data: dict[str, Any], path: str) -> None:
    """Refuse integers beyond 64 bits anywhere (tomllib reads hex, octal and binary
    integers of any size, and str() of a huge one fails in the error message itself).
    Iterative, since the data may be nested as deep as tomllib could read."""
    pending: list[tuple[str, object]] = [(join_key("", key), value) for key, value in data.items()]
    while pending:
        where, value = pending.pop()
        if isinstance(value, dict):
            pending += [(join_key(where, key), item) for key, item in value.items()]
        elif isinstance(value, list):
            pending += [(f"{where}[{index}]", item) for index, item in enumerate(value)]
        elif isinstance(value, int) and not isinstance(value, bool) and value not in INT64:
            reason = (
                f"an integer of {value.bit_length()} bits is out of range: TOML integers are 64-bit"
            )
            raise _one_line(SpecError(path, where, MISSING, reason))


def parse_spec(data: dict[str, Any], path: str = "<spec>") -> Spec:
    problem = spec_path_problem(path)
    if problem:
        raise SpecError(escape_controls(path), "", MISSING, problem)
    root = Table(path, data)
    version = root.integer("version")
    if version != SPEC_VERSION:
        raise root.error(
            "version", version, f"unknown spec version; this dsrctl knows {SPEC_VERSION}"
        )
    linux = _parse_linux(root.table("linux"))
    vips = _parse_vips(root, linux.interface, windows=root.has("windows"))
    windows = None
    if root.has("windows"):  # imported only then: plan and drift on Linux never need it
        from dsrctl.windows.spec import parse_windows

        windows = parse_windows(root.table("windows"), [vip.address for vip in vips])
    tunnels = parse_tunnels(root, interface_problem)
    if tunnels and windows is not None:
        raise SpecError(path, "tunnel[0].kind", tunnels[0].kind, TUNNEL_ON_WINDOWS)
    root.finish()
    warnings = tuple(
        note
        for key, value in linux.sysctl
        if (note := sysctls.no_effect_note(key, value, linux.all_sysctls())) is not None
    ) + tuple(_covered_vip_notes(vips, linux.interface))
    return Spec(
        path=path,
        version=version,
        vips=vips,
        linux=linux,
        warnings=warnings,
        windows=windows,
        tunnels=tunnels,
    )


def _parse_vips(root: Table, interface: str, *, windows: bool = False) -> tuple[Vip, ...]:
    if not root.has("vip"):
        raise root.error("vip", MISSING, "at least one [[vip]] is required")
    seen: dict[tuple[IPAddress, int], str] = {}
    ranges: list[tuple[Vip, str]] = []
    vips: list[Vip] = []
    for table in root.tables("vip"):
        vip = _parse_vip(table, interface)
        where = table.keypath
        key = (vip.address, vip.prefix)
        if key in seen:
            raise table.error(
                "address",
                table.data.get("address"),
                f"duplicate VIP: {vip.cidr} is already given at {seen[key]}",
            )
        if vip.is_range and windows:
            raise table.error("prefix", vip.prefix, WINDOWS_RANGE)
        if vip.is_range:
            # Two ranges that overlap would be two routes for the same addresses: removing
            # one from the spec would leave part of it served. Refused, naming the other.
            for other, at in ranges:
                if vip.network.overlaps(other.network):
                    raise table.error(
                        "prefix",
                        vip.prefix,
                        f"range {vip.cidr} overlaps range {other.cidr} given at {at}; "
                        "give each address once (merge them into one range)",
                    )
            ranges.append((vip, where))
        seen[key] = where
        vips.append(vip)
    if not vips:
        raise root.error("vip", [], "at least one [[vip]] is required")
    return tuple(sorted(vips, key=lambda vip: (*vip.sort_key, vip.prefix)))


def _covered_vip_notes(vips: tuple[Vip, ...], interface: str) -> list[str]:
    """A single VIP inside a range works (the address on the interface and the range's
    route both make it local) but is redundant: said, not refused."""
    ranges = [vip for vip in vips if vip.is_range]
    notes = []
    for vip in vips:
        if vip.is_range:
            continue
        for wide in ranges:
            if vip.version == wide.version and vip.address in wide.network:
                notes.append(
                    f"VIP {vip.cidr} lies inside range {wide.cidr}, which already makes it "
                    f"local: it is also added as an address on {interface} (harmless); "
                    "remove the [[vip]] to keep the range alone"
                )
                break
    return notes


def _parse_vip(table: Table, interface: str) -> Vip:
    text = table.string("address", required=True)
    address = parse_host_address(text, table)
    full = address.max_prefixlen
    prefix = table.integer("prefix", full)
    if prefix == full:
        label = table.optional_string("label")
        if label is not None:
            if address.version == 6:
                raise table.error("label", label, "labels exist for IPv4 addresses only")
            problem = label_problem(label, interface)
            if problem:
                raise table.error("label", label, problem)
        table.finish()
        return Vip(address=address, prefix=prefix, label=label)
    problem = range_problem(address, prefix)
    if problem:
        raise table.error("prefix", prefix, problem)
    network = ipaddress.ip_network(f"{address.compressed}/{prefix}", strict=False)
    if network.network_address != address:
        raise table.error(
            "address",
            text,
            f"a range starts at its network address: {address.compressed} has host bits set "
            f"for /{prefix}; write {network.network_address.compressed} (the range "
            f"{network.compressed})",
        )
    if table.has("label"):
        raise table.error(
            "label",
            table.raw("label"),
            f"a range (/{prefix}) is a local route, not an address: it has no label",
        )
    table.finish()
    return Vip(address=address, prefix=prefix)


# Windows has no local routes (AnyIP): netsh adds addresses only.
WINDOWS_RANGE = (
    "a prefix shorter than the address makes a range (a local route, AnyIP), which Windows "
    "cannot serve: netsh adds single addresses only; list the VIPs one by one (/32 or /128)"
)
# The widest ranges taken: a shorter prefix would make a large part of the address space
# local to this host (and reach the networks it talks to).
MIN_RANGE_PREFIX = {4: 8, 6: 32}


def range_problem(address: IPAddress, prefix: int) -> str | None:
    """Why ``address``/``prefix`` cannot be a range (a prefix shorter than the address)."""
    full = address.max_prefixlen
    widest = MIN_RANGE_PREFIX[address.version]
    if not widest <= prefix <= full:
        return (
            f"an IPv{address.version} prefix must be {full} (one VIP) or {widest}-{full - 1} "
            f"(a range of VIPs, served by a local route on the interface)"
        )
    network = ipaddress.ip_network(f"{address.compressed}/{prefix}", strict=False)
    for end in (network.network_address, network.broadcast_address):
        problem = address_problem(end)
        if problem:
            return f"the range {network.compressed} reaches {end.compressed}: {problem}"
    return None


def parse_host_address(text: str, table: Table) -> IPAddress:
    if "/" in text:
        raise table.error(
            "address", text, "give a host address without CIDR; the prefix goes in 'prefix'"
        )
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise table.error("address", text, "not an IPv4 or IPv6 address") from None
    if getattr(address, "scope_id", None):
        raise table.error("address", text, "a VIP cannot carry a scope (%zone) suffix")
    problem = address_problem(address)
    if problem:
        raise table.error("address", text, problem)
    return address


# Ranges the ipaddress properties do not cover, where an address cannot work as a VIP.
_THIS_NETWORK = ipaddress.IPv4Network("0.0.0.0/8")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
_SITE_LOCAL = ipaddress.IPv6Network("fec0::/10")


def address_problem(address: IPAddress) -> str | None:
    if address.is_unspecified:
        return "the unspecified address is not a host address"
    if address.is_multicast:
        return "a multicast address cannot be a VIP"
    if address.is_loopback:
        return "an address in the loopback range cannot be a VIP"
    if address.is_link_local:
        return "a link-local address cannot be a VIP"
    if isinstance(address, ipaddress.IPv4Address):
        if address == _LIMITED_BROADCAST:
            return "the limited broadcast address is not a host address"
        if address.is_reserved:
            return "an address in the reserved range 240.0.0.0/4 cannot be a VIP"
        if address in _THIS_NETWORK:
            return (
                "an address in 0.0.0.0/8 ('this network', RFC 1122) is only ever a source "
                "address; hosts and routers drop packets sent to it, so it cannot be a VIP"
            )
    else:
        if address.ipv4_mapped is not None:
            return "an IPv4-mapped IPv6 address cannot be a VIP; give the IPv4 address"
        if address in _IPV4_COMPATIBLE:
            return (
                "an IPv4-compatible IPv6 address (::/96) is deprecated (RFC 4291) and the "
                "kernel reports it in IPv4 form, so dsrctl could never verify it; give the "
                "IPv4 address, or a global or unique-local (fd00::/8) IPv6 address"
            )
        if address in _SITE_LOCAL:
            return (
                "a site-local address (fec0::/10) is deprecated (RFC 3879) and the kernel "
                "gives it site scope, not global; use a global or unique-local (fd00::/8) "
                "address"
            )
    return None


def _names(characters: frozenset[str]) -> str:
    """The punctuation of a character set, for messages: "'-', '.', '_'"."""
    extra = sorted(characters - set(string.ascii_letters + string.digits))
    return ", ".join(repr(char) for char in extra)


def interface_problem(name: str) -> str | None:
    """Why ``name`` cannot be ``linux.interface``: the kernel's dev_valid_name() rules,
    narrowed to characters every persistence backend takes as they are."""
    if not name:
        return "an interface name cannot be empty"
    if len(name.encode()) >= IFNAMSIZ:
        return f"interface names are at most {IFNAMSIZ - 1} characters"
    if name in (".", ".."):
        return "'.' and '..' are not interface names"
    bad = _characters_problem(name, NAME_CHARACTERS, "interface names")
    if bad:
        return bad
    if name[0] in "-.":
        return "an interface name cannot begin with '-' or '.' (commands read it as an option)"
    if name.isdigit():
        return "systemd reads a name made only of digits as an interface index"
    return None


def _characters_problem(text: str, allowed: frozenset[str], what: str) -> str | None:
    bad = sorted({char for char in text if char not in allowed})
    if not bad:
        return None
    shown = ", ".join(repr(char) for char in bad)
    return (
        f"{what} cannot contain {shown}: dsrctl takes ASCII letters, digits and "
        f"{_names(allowed)}, which mean nothing special in the files and commands it writes"
    )


def label_problem(label: str, interface: str) -> str | None:
    if not label:
        return "a label cannot be empty"
    if len(label.encode()) >= IFNAMSIZ:
        return f"labels are at most {IFNAMSIZ - 1} characters"
    bad = _characters_problem(label, LABEL_CHARACTERS, "labels")
    if bad:
        return bad
    if not label.startswith(interface):
        return (
            f"the label must begin with the interface name, e.g. '{interface}:1' "
            "(as ip(8) requires)"
        )
    if label.endswith(":"):
        return f"the label needs a name after the colon, e.g. '{interface}:1'"
    return None


def path_problem(path: str) -> str | None:
    """Why ``path`` cannot be a path key: absolute, no control characters, and already
    normal, so that joined to linux.persist.root it names a file under the root and the
    spec, the plan and the journal all spell it the same way."""
    if not path.startswith("/"):
        return "must be an absolute path"
    found = control_characters(path)
    if found:
        return f"a path cannot contain control characters ({', '.join(found)})"
    parts = path.split("/")
    if ".." in parts:
        return "'..' is not allowed in a path: files stay under linux.persist.root"
    normal = "/" + "/".join(part for part in parts if part not in ("", "."))
    if path != normal:
        return f"not a normal path ('//', '/./' or a trailing '/'): write {normal!r}"
    return None


def _parse_linux(table: Table) -> LinuxSpec:
    interface = table.string("interface", "lo")
    problem = interface_problem(interface)
    if problem:
        raise table.error("interface", interface, problem)
    arp_ignore = table.integer("arp_ignore", 1)
    if arp_ignore not in (1, 2):
        reason = sysctls.ARP_IGNORE_REASONS.get(arp_ignore)
        if reason is None:
            reason = (
                "arp_ignore 4-7 are reserved (the kernel treats them like 0)"
                if 4 <= arp_ignore <= 7
                else "out of range (the kernel knows 0-3 and 8)"
            )
        raise table.error("arp_ignore", arp_ignore, reason + "; use 1 or 2")
    arp_announce = table.integer("arp_announce", 2)
    if arp_announce != 2:
        reason = (
            sysctls.ARP_ANNOUNCE_REASONS[arp_announce]
            if arp_announce in (0, 1)
            else "out of range (the kernel knows 0-2); 2 is the only safe value"
        )
        raise table.error("arp_announce", arp_announce, reason)
    extra = _parse_sysctls(table.table("sysctl"))
    persist = _parse_persist(table.table("persist"))
    table.finish()
    return LinuxSpec(
        interface=interface,
        arp_ignore=arp_ignore,
        arp_announce=arp_announce,
        sysctl=extra,
        persist=persist,
    )


def _parse_sysctls(table: Table) -> tuple[tuple[str, int | str], ...]:
    values: dict[str, int | str] = {}
    spelled: dict[str, str] = {}
    for key in list(table.data):
        value = table.raw(key)
        if isinstance(value, dict):
            raise table.error(
                key,
                value,
                "sysctl names contain dots: quote the whole name, e.g. "
                '"net.ipv4.conf.eth0.rp_filter" = 2',
            )
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise table.error(key, value, "a sysctl value must be an integer or a string")
        problem = (
            sysctls.key_problem(key)
            or sysctls.managed_elsewhere(key)
            or sysctls.value_problem(key, value)
        )
        if problem:
            raise table.error(key, value, problem)
        canon = sysctls.canonical_key(key)
        if canon in values:
            raise table.error(key, value, f"the same sysctl is already set as {spelled[canon]!r}")
        values[canon] = value
        spelled[canon] = key
    table.finish()
    return tuple(sorted(values.items()))


def _parse_persist(table: Table) -> Persist:
    enabled = table.boolean("enabled", True)
    sysctl_file = table.string("sysctl_file", DEFAULT_SYSCTL_FILE)
    problem = path_problem(sysctl_file)
    if problem:
        raise table.error("sysctl_file", sysctl_file, problem)
    name = sysctl_file.rsplit("/", 1)[-1]
    if name == "sysctl.conf":
        raise table.error(
            "sysctl_file",
            sysctl_file,
            "dsrctl rewrites its sysctl file whole; give it a file of its own in /etc/sysctl.d/",
        )
    if not name.endswith(".conf") or name == ".conf":
        raise table.error(
            "sysctl_file", sysctl_file, "systemd-sysctl only reads files whose names end in .conf"
        )
    if name.startswith("."):
        raise table.error(
            "sysctl_file", sysctl_file, "systemd-sysctl skips files whose names begin with '.'"
        )
    spelled = table.string("addresses", "auto")
    addresses = BACKEND_ALIASES.get(spelled, spelled)
    if addresses not in ADDRESS_BACKENDS:
        known = ", ".join(ADDRESS_BACKENDS)
        raise table.error("addresses", spelled, f"unknown backend; known: {known}")
    if not enabled and addresses not in ("auto", "none"):
        raise table.error(
            "addresses",
            spelled,
            "persistence is disabled (enabled = false); set enabled = true or remove this key",
        )
    root = table.string("root", "/")
    problem = path_problem(root)
    if problem:
        raise table.error("root", root, problem)
    table.finish()
    return Persist(enabled=enabled, sysctl_file=sysctl_file, addresses=addresses, root=root)


def sysctl_key_path(key: str) -> str:
    """The spec key path under which a canonical sysctl key is reported."""
    if key == sysctls.ARP_IGNORE_KEY:
        return "linux.arp_ignore"
    if key == sysctls.ARP_ANNOUNCE_KEY:
        return "linux.arp_announce"
    return join_key("linux.sysctl", key)

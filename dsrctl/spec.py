"""The TOML spec: load, validate, canonicalise.

Everything here is pure (no host access): a spec that passes :func:`load_spec` is valid
in itself. Checks that need the host (does this sysctl exist?) are the provider's, and
run before anything is read or changed (``providers.linux.LinuxHost.check_spec``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import posixpath
import tomllib
from dataclasses import dataclass
from typing import Any

from dsrctl import sysctls
from dsrctl.errors import MISSING, SpecError
from dsrctl.schema import Table, join_key
from dsrctl.spec_windows import WindowsSpec, parse_windows

SPEC_VERSION = 1
DEFAULT_SYSCTL_FILE = "/etc/sysctl.d/90-dsrctl.conf"
# linux.persist.addresses: how the VIPs come back after a reboot (docs/persistence/)
ADDRESS_BACKENDS = (
    "auto",
    "none",
    "systemd-unit",
    "systemd-networkd",
    "networkmanager",
    "ifupdown",
    "netplan",
    "ifcfg",
)
# Other names a spec may use; the spec keeps the canonical one (old specs keep working).
BACKEND_ALIASES = {"networkd": "systemd-networkd"}
IFNAMSIZ = 16  # including the terminating NUL: names are at most 15 characters

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


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


def load_spec(path: str) -> Spec:
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
        data = tomllib.loads(raw.decode("utf-8"))
    except FileNotFoundError:
        raise SpecError(path, "", MISSING, "spec file not found") from None
    except PermissionError:
        raise SpecError(path, "", MISSING, "cannot read spec file: permission denied") from None
    except IsADirectoryError:
        raise SpecError(path, "", MISSING, "is a directory, not a spec file") from None
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(path, "", MISSING, f"invalid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise SpecError(path, "", MISSING, f"invalid TOML: not UTF-8 ({exc.reason})") from None
    spec = parse_spec(data, path)
    return dataclasses.replace(spec, digest=hashlib.sha256(raw).hexdigest())


def parse_spec(data: dict[str, Any], path: str = "<spec>") -> Spec:
    root = Table(path, data)
    version = root.integer("version")
    if version != SPEC_VERSION:
        raise root.error(
            "version", version, f"unknown spec version; this dsrctl knows {SPEC_VERSION}"
        )
    linux = _parse_linux(root.table("linux"))
    vips = _parse_vips(root, linux.interface)
    windows = parse_windows(root.table("windows"), vips) if root.has("windows") else None
    root.finish()
    warnings = tuple(
        note
        for key, value in linux.sysctl
        if (note := sysctls.no_effect_note(key, value, linux.all_sysctls())) is not None
    )
    return Spec(
        path=path, version=version, vips=vips, linux=linux, warnings=warnings, windows=windows
    )


def _parse_vips(root: Table, interface: str) -> tuple[Vip, ...]:
    if not root.has("vip"):
        raise root.error("vip", MISSING, "at least one [[vip]] is required")
    seen: dict[IPAddress, str] = {}
    vips: list[Vip] = []
    for table in root.tables("vip"):
        vip = _parse_vip(table, interface)
        where = table.keypath
        if vip.address in seen:
            raise table.error(
                "address",
                table.data.get("address"),
                f"duplicate VIP: {vip.address.compressed} is already given at {seen[vip.address]}",
            )
        seen[vip.address] = where
        vips.append(vip)
    if not vips:
        raise root.error("vip", [], "at least one [[vip]] is required")
    return tuple(sorted(vips, key=lambda vip: vip.sort_key))


def _parse_vip(table: Table, interface: str) -> Vip:
    text = table.string("address", required=True)
    address = parse_host_address(text, table)
    full = 32 if address.version == 4 else 128
    prefix = table.integer("prefix", full)
    if prefix != full:
        reason = (
            f"only /{full} is allowed for an IPv{address.version} VIP: a wider prefix on "
            f"{interface} captures the whole subnet and cuts the host off from it"
        )
        raise table.error("prefix", prefix, reason)
    label = table.optional_string("label")
    if label is not None:
        if address.version == 6:
            raise table.error("label", label, "labels exist for IPv4 addresses only")
        problem = label_problem(label, interface)
        if problem:
            raise table.error("label", label, problem)
    table.finish()
    return Vip(address=address, prefix=prefix, label=label)


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
        if address == ipaddress.IPv4Address("255.255.255.255"):
            return "the limited broadcast address is not a host address"
        if address.is_reserved:
            return "an address in the reserved range 240.0.0.0/4 cannot be a VIP"
    else:
        if address.ipv4_mapped is not None:
            return "an IPv4-mapped IPv6 address cannot be a VIP; give the IPv4 address"
    return None


def interface_problem(name: str) -> str | None:
    """Why the kernel would refuse ``name`` as an interface name (dev_valid_name())."""
    if not name:
        return "an interface name cannot be empty"
    if len(name.encode()) >= IFNAMSIZ:
        return f"interface names are at most {IFNAMSIZ - 1} characters"
    if name in (".", ".."):
        return "'.' and '..' are not interface names"
    for char in name:
        if char in "/:" or char.isspace() or not char.isprintable():
            return f"interface names cannot contain {char!r}"
    return None


def label_problem(label: str, interface: str) -> str | None:
    if not label:
        return "a label cannot be empty"
    if len(label.encode()) >= IFNAMSIZ:
        return f"labels are at most {IFNAMSIZ - 1} characters"
    if not label.isascii() or not label.isprintable() or any(c.isspace() for c in label):
        return "labels are printable ASCII without spaces"
    if not label.startswith(interface):
        return (
            f"the label must begin with the interface name, e.g. '{interface}:1' "
            "(as ip(8) requires)"
        )
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
    if not sysctl_file.startswith("/"):
        raise table.error("sysctl_file", sysctl_file, "must be an absolute path")
    if sysctl_file.rsplit("/", 1)[-1] == "sysctl.conf":
        raise table.error(
            "sysctl_file",
            sysctl_file,
            "dsrctl rewrites its sysctl file whole; give it a file of its own in /etc/sysctl.d/",
        )
    if not sysctl_file.endswith(".conf") or sysctl_file.endswith("/.conf"):
        raise table.error(
            "sysctl_file", sysctl_file, "systemd-sysctl only reads files whose names end in .conf"
        )
    if "\n" in sysctl_file or "\0" in sysctl_file:
        raise table.error("sysctl_file", sysctl_file, "not a usable path")
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
    if not root.startswith("/") or "\n" in root or "\0" in root:
        raise table.error("root", root, "must be an absolute path")
    table.finish()
    return Persist(
        enabled=enabled,
        sysctl_file=sysctl_file,
        addresses=addresses,
        root=posixpath.normpath(root),
    )


def sysctl_key_path(key: str) -> str:
    """The spec key path under which a canonical sysctl key is reported."""
    if key == sysctls.ARP_IGNORE_KEY:
        return "linux.arp_ignore"
    if key == sysctls.ARP_ANNOUNCE_KEY:
        return "linux.arp_announce"
    return join_key("linux.sysctl", key)

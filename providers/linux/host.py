"""LinuxHost: the Linux provider (read, check, write)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from providers.base import PlannedChange, Provider
from providers.errors import HostError, PrivilegeError
from providers.linux import files
from providers.linux.changes import is_address
from providers.linux.sysctl import SysctlTree
from providers.linux.sysctl_keys import split_key
from providers.model import FileState, HostState, MssClamp, ReadScope, SysctlValue, TunnelState
from providers.safefile import Staged

if TYPE_CHECKING:
    from providers.linux.changes import AddressChange, FileChange, RouteChange
    from providers.linux.decap_side import DecapSide
    from providers.linux.firewall import Ruleset
    from providers.linux.persist import Detection
    from providers.linux.persist.sysctl_conflicts import Assignment
    from providers.linux.routes import LocalRange
    from providers.linux.uplinks import Uplink

CAP_NET_ADMIN = 12
CAP_DAC_OVERRIDE = 1
KUBERNETES_HINT_INTERFACES = ("kube-ipvs0",)
KUBERNETES_HINT_FILES = ("/etc/kubernetes/kubelet.conf", "/var/lib/kubelet/config.yaml")
SHOW_SYSCTLS = ("arp_ignore", "arp_announce", "rp_filter")


class LinuxHost(Provider):
    platform = "linux"

    def __init__(self, proc_sys: str = "/proc/sys", root: str = "/") -> None:
        self.sysctl = SysctlTree(proc_sys)
        self.root = root  # where `show` looks for network configuration
        self._indexes: dict[str, int] = {}
        self._running: frozenset[str] | None = None
        # Detection reads many files: the spec check and the plan of one run share it;
        # any write of this provider forgets it, so verification sees the new files.
        self._detections: dict[tuple[str, str], Detection] = {}
        # path, sha256, mode -> a staged copy of what a file held before a transaction
        # changed it: undoing that change is then a rename, which a full disk allows.
        self._spares: dict[tuple[str, str, int], Staged] = {}

    # -- checks -------------------------------------------------------------------------
    def has_interface(self, name: str) -> bool:
        """Whether ``name`` is an interface of this host (its IPv4 sysctls exist)."""
        # /proc/sys/net follows the caller's network namespace; /sys/class/net may not.
        return os.path.isdir(os.path.join(self.sysctl.root, "net", "ipv4", "conf", name))

    def connected_networks(self, leave_out: Sequence[str] = ()) -> list[tuple[str, str]]:
        """(interface, address/prefix) of the subnets this host sits in (VIP ranges must
        not cover one: the spec check)."""
        from providers.linux.addresses import connected_networks

        return connected_networks(leave_out)

    def kernel_release(self) -> str:
        from providers.linux import kmod

        return kmod.release()

    def has_module(self, name: str) -> bool:
        """Whether this kernel has the module: loaded, built in, or installed."""
        from providers.linux import kmod

        return kmod.available(name)

    def link_kind(self, name: str) -> TunnelState | None:
        """The device ``name`` as a tunnel state (its link kind), or None if absent."""
        from providers.linux.tunnels import read_tunnels

        return read_tunnels([name]).get(name)

    def check_privileges(self, command: str = "apply") -> None:
        # Root without CAP_NET_ADMIN (a restricted container) cannot change addresses
        # either; a non-root user also needs to get past the 0644 root-owned /proc/sys files.
        effective = _effective_capabilities()
        needed = [CAP_NET_ADMIN] if os.geteuid() == 0 else [CAP_NET_ADMIN, CAP_DAC_OVERRIDE]
        if not all((effective >> cap) & 1 for cap in needed):
            raise PrivilegeError(
                f"{command} changes addresses and sysctls: run it as root "
                "(it needs CAP_NET_ADMIN and write access to /proc/sys); nothing was changed"
            )

    def preflight(self, steps: Sequence[PlannedChange]) -> None:
        made = {step.name for step in steps if step.kind == "dir" and step.after is not None}
        for step in steps:
            creates = step.kind in ("file", "symlink", "dir") and step.after is not None
            if creates and os.path.dirname(step.name) not in made:
                files.check_parent(step.name)
            if is_address(step) and step.interface not in self._indexes:
                raise HostError(f"interface {step.interface} does not exist")

    # -- reading ------------------------------------------------------------------------
    def read(self, scope: ReadScope) -> HostState:
        from providers.linux.addresses import read_interfaces

        names = (scope.interface, *scope.interfaces, *KUBERNETES_HINT_INTERFACES)
        links, addresses = read_interfaces(names)
        if scope.interface not in links:
            raise HostError(
                f"interface {scope.interface} does not exist on this host (linux.interface)"
            )
        self._indexes = {name: link.index for name, link in links.items()}
        state = HostState()
        # A per-interface key of a device that does not exist yet (a decap device the
        # plan creates) is absent, like the device.
        state.sysctls = {
            key: value
            for key in scope.sysctl_keys
            if (value := self._read_or_absent(key)) is not None
        }
        state.observed_sysctls = {key: self._read_or_absent(key) for key in scope.observed_sysctls}
        state.addresses = {
            name: found
            for name, found in addresses.items()
            if name not in KUBERNETES_HINT_INTERFACES
        }
        state.files = {path: files.read_file(path) for path in scope.files}
        state.symlinks = {path: files.read_symlink(path) for path in scope.symlinks}
        state.dirs = {path: files.read_dir(path) for path in scope.dirs}
        if scope.routes:
            from providers.linux.routes import read_routes

            state.routes = read_routes(scope.routes)
        if scope.mss:
            from providers.linux import nft

            state.mss = nft.read_clamp()
        if scope.modules or scope.tunnels or scope.fou_ports:
            _read_tunnels(state, scope)
        warnings = []
        if not links[scope.interface].up:
            warnings.append(
                f"interface {scope.interface} is down: the kernel does not deliver traffic for "
                f"the VIPs on it; bring it up (ip link set {scope.interface} up) and find out "
                "what took it down"
            )
        evidence = [name for name in KUBERNETES_HINT_INTERFACES if name in links]
        evidence += [path for path in KUBERNETES_HINT_FILES if os.path.exists(path)]
        if evidence:
            warnings.append(
                f"this host looks like a Kubernetes node ({', '.join(evidence)} exists): "
                "kube-proxy in IPVS mode with strictARP sets net.ipv4.conf.all.arp_ignore=1 "
                "as well, and the value affects every pod interface; check with the cluster "
                "owners"
            )
        state.facts["warnings"] = warnings
        return state

    def observe(self, resources: list[str]) -> dict[str, Any]:
        from providers.linux.addresses import read_interfaces

        kinds: dict[str, list[str]] = {
            "sysctl": [],
            "address": [],
            "file": [],
            "symlink": [],
            "dir": [],
            "route": [],
            "nft": [],
            "module": [],
            "tunnel": [],
            "fou": [],
        }
        for resource in resources:
            kind, _, name = resource.partition(":")
            if kind not in kinds:
                raise HostError(f"unknown resource {resource!r} for the Linux provider")
            kinds[kind].append(name)
        observed: dict[str, Any] = {}
        for key in kinds["sysctl"]:
            observed[f"sysctl:{key}"] = self._read_or_absent(key)
        interfaces = {name.partition(":")[0] for name in kinds["address"]}
        links, addresses = read_interfaces(interfaces)
        self._indexes.update({name: link.index for name, link in links.items()})
        for name in kinds["address"]:
            interface, _, cidr = name.partition(":")
            observed[f"address:{name}"] = addresses.get(interface, {}).get(cidr)
        for path in kinds["file"]:
            observed[f"file:{path}"] = files.read_file(path)
        for path in kinds["symlink"]:
            observed[f"symlink:{path}"] = files.read_symlink(path)
        for path in kinds["dir"]:
            observed[f"dir:{path}"] = files.read_dir(path)
        if kinds["route"]:
            from providers.linux.routes import read_routes

            routes = read_routes(kinds["route"])
            for key in kinds["route"]:
                observed[f"route:{key}"] = routes.get(key)
        if kinds["nft"]:
            from providers.linux import nft

            clamp = nft.read_clamp()
            observed.update({f"nft:{name}": clamp for name in kinds["nft"]})
        if kinds["module"] or kinds["tunnel"] or kinds["fou"]:
            ports = tuple(int(port) for port in kinds["fou"] if port.isdigit())
            tunnels = HostState()
            _read_tunnels(
                tunnels,
                ReadScope(
                    "lo",
                    (),
                    (),
                    modules=tuple(kinds["module"]),
                    tunnels=tuple(kinds["tunnel"]),
                    fou_ports=ports,
                ),
            )
            for name in kinds["module"]:
                observed[f"module:{name}"] = "loaded" if tunnels.modules[name].loaded else None
            for name in kinds["tunnel"]:
                observed[f"tunnel:{name}"] = tunnels.tunnels.get(name)
            for port in kinds["fou"]:
                observed[f"fou:{port}"] = (
                    tunnels.fou_ports.get(int(port)) if port.isdigit() else None
                )
        return observed

    def describe(self) -> dict[str, Any]:
        from providers.linux.addresses import list_links, read_interfaces

        links = list_links()
        names = [link["name"] for link in links]
        _, addresses = read_interfaces(names)
        report: dict[str, Any] = {"platform": "linux", "interfaces": []}
        for link in links:
            name = link["name"]
            entry: dict[str, Any] = {
                "name": name,
                "index": link["index"],
                "up": link["up"],
                "addresses": [
                    {"address": a.address, "prefix": a.prefix, **a.attributes()}
                    for a in sorted(addresses.get(name, {}).values(), key=_address_order)
                ],
                "sysctl": self._interface_sysctls(name),
            }
            report["interfaces"].append(entry)
        report["sysctl"] = {
            f"net.ipv4.conf.{scope}.{leaf}": self._try_read(f"net.ipv4.conf.{scope}.{leaf}")
            for scope in ("all", "default")
            for leaf in SHOW_SYSCTLS
        }
        # What the kernel acts on: max(conf.all, conf.IFACE) for these three keys.
        for entry in report["interfaces"]:
            entry["effective"] = {
                leaf: _max_or_none(
                    entry["sysctl"][leaf], report["sysctl"][f"net.ipv4.conf.all.{leaf}"]
                )
                for leaf in SHOW_SYSCTLS
            }
        return report

    def _interface_sysctls(self, name: str) -> dict[str, SysctlValue | None]:
        component = name.replace(".", "/")
        return {leaf: self._try_read(f"net.ipv4.conf.{component}.{leaf}") for leaf in SHOW_SYSCTLS}

    def _read_or_absent(self, key: str) -> SysctlValue | None:
        """The key's value; None for a per-interface key whose interface does not exist."""
        parts = split_key(key)
        if (
            len(parts) == 5
            and parts[:3] in (["net", "ipv4", "conf"], ["net", "ipv6", "conf"])
            and not os.path.isdir(os.path.join(self.sysctl.root, *parts[:4]))
        ):
            return None
        return self.sysctl.read(key)

    def uplinks(self) -> tuple[str, ...]:
        """The devices of the main table's default routes (IPv4; else IPv6), in this
        network namespace."""
        from providers.linux.persist.probe import default_route_devices

        return default_route_devices()

    def local_ranges(self) -> list[LocalRange]:
        """The local routes of table local wider than one address (AnyIP ranges, and the
        kernel's own for an address such as 127.0.0.1/8), with who added each."""
        from providers.linux.routes import read_local_ranges

        return read_local_ranges()

    def decap_devices(self) -> tuple[str, ...]:
        """The IP-in-IP/GRE devices and the vxlan devices in GPE mode: where tunnels
        decapsulate (`show`)."""
        from providers.linux.rtnl import dump_links

        kinds = ("ipip", "gre", "ip6tnl", "ip6gre")
        return tuple(
            link.name
            for link in dump_links()
            if link.kind in kinds or (link.kind == "vxlan" and link.gpe)
        )

    def decap_side(self, tunnels: Sequence[str], modules: Sequence[str]) -> DecapSide:
        """`show`: the decap devices (those on the host and ``tunnels``), the fou ports,
        the kernel modules (``modules`` and those of the devices) and the MSS clamp."""
        from providers.linux.decap_side import read_decap_side

        return read_decap_side(tunnels, modules)

    def try_sysctl(self, key: str) -> SysctlValue | None:
        """The key's value, or None when it cannot be read (no such key, no permission)."""
        return self._try_read(key)

    def boot_sysctl_sources(self, root: str, keys: list[str]) -> dict[str, Assignment | None]:
        """For each key, the sysctl.d line under ``root`` that sets it at boot, or None."""
        from providers.linux.persist.sysctl_conflicts import boot_sources

        return boot_sources(root, keys)

    def _try_read(self, key: str) -> SysctlValue | None:
        try:
            return self.sysctl.read(key)
        except (HostError, PrivilegeError):
            return None

    # -- tunnel mode: the uplink and the MSS clamp (providers/linux/uplinks.py, nft.py) --
    def uplink(self, version: int, name: str | None) -> Uplink | None:
        """The interface the encapsulated packets of IP ``version`` arrive on: ``name``, or
        the device of the main table's default route; with its MTU."""
        from providers.linux.uplinks import find_uplink

        return find_uplink(version, name)

    def nft_path(self) -> str | None:
        from providers.linux.nft import find_nft

        return find_nft()

    def input_firewall(self) -> tuple[Ruleset | None, tuple[str, ...]]:
        """The nftables ruleset (None: nft is not installed) and the iptables-legacy
        tables of this namespace, whose rules nftables does not show."""
        from providers.linux.firewall import legacy_tables, read_ruleset
        from providers.linux.nft import find_nft

        nft = find_nft()
        return (read_ruleset(nft) if nft is not None else None), legacy_tables()

    # -- writing (called by steps) ------------------------------------------------------
    def apply_mss(self, clamp: MssClamp | None) -> None:
        """Make dsrctl's nftables table exactly ``clamp`` (None: remove it), atomically."""
        from providers.linux import nft

        nft.load(nft.script(clamp))

    def set_sysctl(self, key: str, value: SysctlValue) -> None:
        self.sysctl.write(key, value)

    def load_module(self, name: str) -> None:
        from providers.linux import kmod

        kmod.load(name)

    def unload_module(self, name: str) -> str | None:
        """Unload a module dsrctl loaded, unless something uses it: then leave it loaded
        and say why (unloading would destroy every device of its kinds, in every
        namespace)."""
        from providers.linux import kmod
        from providers.linux.rtnl import dump_links
        from providers.linux.tunnels import module_users

        state = kmod.module_state(name)
        if not state.loaded:
            return None
        holders = [user for user in state.users if user.startswith("module:")]
        users = list(module_users(name, dump_links()))
        if kmod.canonical(name) == "fou":
            from providers.linux.fou import read_ports

            users += [f"fou port {port}" for port in sorted(read_ports())]
        if holders and not users and state.refcnt == len(holders):
            # Only modules hold it (ip6_gre holds ip6_tunnel): `modprobe -r` of the holder
            # removes it too, once unused.
            return None
        if state.builtin or state.refcnt or users:
            why = "it is built in" if state.builtin else _in_use(state.refcnt, holders + users)
            return f"kernel module {name} stays loaded: {why}"
        try:
            kmod.unload(name)
        except HostError as exc:
            return f"kernel module {name} stays loaded: {exc}"
        return None

    def change_tunnel(
        self, name: str, before: TunnelState | None, after: TunnelState | None
    ) -> None:
        from providers.linux.tunnels import change_tunnel

        change_tunnel(name, before, after)

    def add_fou_port(self, port: int, kind: str) -> None:
        from providers.linux.fou import add_port

        add_port(port, kind)

    def remove_fou_port(self, port: int) -> None:
        from providers.linux.fou import remove_port

        remove_port(port)

    def apply_addresses(self, steps: Sequence[AddressChange]) -> list[BaseException | None]:
        from providers.linux.addresses import apply_address_steps

        return apply_address_steps(steps, self._indexes)

    def apply_route(self, step: RouteChange) -> None:
        from providers.linux.routes import apply_route_step

        devices = {state.device for state in (step.before, step.after) if state is not None}
        if not devices <= self._indexes.keys():
            from providers.linux.rtnl import dump_links

            self._indexes.update({link.name: link.index for link in dump_links()})
        apply_route_step(step, self._indexes)

    def write_file(self, path: str, state: FileState) -> None:
        spare = self._spares.pop((path, state.sha256, state.mode), None)
        if spare is not None:
            self._change(path, spare.commit)
            return
        self._change(path, lambda: files.write_file(path, state))

    def prepare_undo(self, steps: Sequence[FileChange]) -> None:
        """Before the first change: stage beside each file a step will replace or remove a
        copy of what it holds now. Undoing the step is then a rename, so a disk that fills
        up halfway can still be put back exactly; without the room for the copies, the
        transaction stops here, before any change."""
        for step in steps:
            before = step.before
            if step.kind != "file" or not isinstance(before, FileState):
                continue
            key = (step.name, before.sha256, before.mode)
            if key in self._spares:
                continue
            try:
                spare = files.stage_file(step.name, before)
            except (OSError, HostError) as exc:
                self.release_undo()
                reason = exc.strerror if isinstance(exc, OSError) else str(exc)
                raise HostError(
                    f"cannot keep a copy of {step.name} to undo its change with: "
                    f"{reason}; nothing was changed"
                ) from None
            if spare is not None:  # a link is put back as a link: no copy needed
                self._spares[key] = spare

    def release_undo(self) -> None:
        for spare in self._spares.values():
            spare.discard()
        self._spares.clear()

    def remove_file(self, path: str) -> None:
        self._change(path, lambda: files.remove_file(path))

    def write_symlink(self, path: str, target: str) -> None:
        self._change(path, lambda: files.write_symlink(path, target))

    def remove_symlink(self, path: str) -> None:
        self._change(path, lambda: files.remove_symlink(path))

    def make_dir(self, path: str) -> None:
        self._detections.clear()
        files.make_dir(path)

    def remove_dir(self, path: str) -> None:
        self._detections.clear()
        # Spare copies of files that lived here would keep the directory from going.
        for key in [key for key in self._spares if os.path.dirname(key[0]) == path]:
            self._spares.pop(key).discard()
        files.remove_dir(path)

    def _change(self, path: str, change: Callable[[], None]) -> None:
        """A change of a file a running daemon reads includes its reload (persist.reload)."""
        from providers.linux.persist.reload import change_and_reload

        self._detections.clear()
        change_and_reload(path, self.running_daemons(), change)

    # -- persistence (providers/linux/persist) ---------------------------------------------
    def running_daemons(self) -> frozenset[str]:
        """What runs on this host that reloads care about (systemd, networkd, NM)."""
        if self._running is None:
            from providers.linux.persist.detect import running_daemons

            self._running = running_daemons("/", "/proc")
        return self._running

    def detect_persistence(self, root: str, interface: str) -> Detection:
        """Who configures ``interface`` at boot under ``root``; on the live host, also who
        configures the uplink (the interface of the default route)."""
        from providers.linux.persist.detect import detect, is_live
        from providers.linux.persist.probe import uplink

        key = (root, interface)
        if key not in self._detections:
            live = is_live(root)
            self._detections[key] = detect(root, interface, uplink=uplink() if live else None)
        return self._detections[key]

    def sysctl_conflicts(
        self, root: str, sysctl_file: str, wanted: dict[str, SysctlValue]
    ) -> list[str]:
        """Warnings for what other sysctl files under ``root`` set against ``wanted``."""
        from providers.linux.persist.sysctl_conflicts import scan

        return scan(root, sysctl_file, wanted)

    def run_batch(self, steps: Sequence[AddressChange]) -> list[BaseException | None]:
        """Run a group of batchable steps of one kind in one host call (addresses are the
        only batchable kind)."""
        return self.apply_addresses(steps)


def _read_tunnels(state: HostState, scope: ReadScope) -> None:
    """The modules, decap devices and fou ports in scope (one link dump for all)."""
    import dataclasses

    from providers.linux import kmod
    from providers.linux.fou import read_ports
    from providers.linux.rtnl import dump_links
    from providers.linux.tunnels import module_users, read_tunnels

    links = dump_links()
    state.tunnels = read_tunnels(scope.tunnels, links)
    state.fou_ports = read_ports()
    for name in scope.modules:
        module = kmod.module_state(name)
        users = module.users + module_users(name, links)
        if kmod.canonical(name) == "fou":
            users += tuple(f"fou:{port}" for port in sorted(state.fou_ports))
        state.modules[name] = dataclasses.replace(module, users=users)


def _in_use(refcnt: int, users: list[str]) -> str:
    parts = [f"its reference count is {refcnt}"] if refcnt else []
    if users:
        parts.append("in use by " + ", ".join(users))
    return "; ".join(parts)


def _max_or_none(own: SysctlValue | None, common: SysctlValue | None) -> SysctlValue | None:
    if isinstance(own, int) and isinstance(common, int):
        return max(own, common)
    return None


def _address_order(state: Any) -> tuple[int, str]:
    return (state.version, state.address)


def _effective_capabilities() -> int:
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("CapEff:"):
                    return int(line.split()[1], 16)
    except OSError:
        pass
    return 0

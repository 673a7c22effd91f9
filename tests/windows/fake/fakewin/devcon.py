"""A stateful stand-in for devcon.exe: install, find and remove of *MSLOOP devices.

``install`` creates a device and, as Windows does, a network adapter with the next free
default name ("Ethernet 2" on 2008 and later, "Local Area Connection 2" on 2003), DHCP
on and strong host. devcon's exit code is its verdict: 0 done, 2 failed, 3 syntax error.
"""

from __future__ import annotations

from fakewin.host import elevated, emit, injected_failure, load, new_adapter, save

TYPE_CHECKING = False
if TYPE_CHECKING:
    from fakewin.host import State

HARDWARE_ID = "*MSLOOP"


def run(argv: list[str]) -> int:
    state = load()
    line = " ".join(argv)
    state.setdefault("log", []).append(f"devcon {line}")
    try:
        failure = injected_failure(state, f"devcon {line}")
        if failure is not None:
            emit(state, failure[0])
            return failure[1]
        return _dispatch(state, argv)
    finally:
        save(state)


def _dispatch(state: State, argv: list[str]) -> int:
    command = argv[0].lower() if argv else ""
    if command == "find" and len(argv) == 2:
        return _find(state, argv[1])
    if command == "install" and len(argv) == 3:
        return _install(state, argv[1], argv[2])
    if command == "remove" and len(argv) == 2:
        return _remove(state, argv[1])
    emit(state, ["devcon.exe failed: invalid command or arguments."])
    return 3


def _find(state: State, hardware_id: str) -> int:
    found = [d for d in state["devices"] if d["hwid"].lower() == hardware_id.lower()]
    if not found:
        emit(state, ["No matching devices found."])
        return 0
    lines = [f"{d['instance']:<60}: {d['description']}" for d in found]
    emit(state, [*lines, f"{len(found)} matching device(s) found."])
    return 0


def _install(state: State, inf: str, hardware_id: str) -> int:
    if not elevated(state) or not inf.lower().endswith("\\inf\\netloop.inf"):
        emit(state, ["devcon.exe failed."])
        return 2
    if hardware_id != HARDWARE_ID:
        emit(state, ["devcon.exe failed."])
        return 2
    legacy = state["version"] == "2003"
    number = len(state["devices"])
    description = "Microsoft Loopback Adapter" if legacy else "Microsoft KM-TEST Loopback Adapter"
    if number:
        description += f" #{number + 1}"
    base = "Local Area Connection" if legacy else "Ethernet"
    taken = {entry["name"].lower() for entry in state["adapters"]}
    suffix = 2
    while f"{base} {suffix}".lower() in taken:
        suffix += 1
    name = f"{base} {suffix}"
    instance = f"ROOT\\NET\\{number:04d}"
    state["devices"].append(
        {"instance": instance, "hwid": HARDWARE_ID, "description": description, "adapter": name}
    )
    if not state.get("devcon_no_adapter"):
        state["adapters"].append(new_adapter(name, loopback=True))
    emit(
        state,
        [
            "Device node created. Install is complete when drivers are installed...",
            f"Updating drivers for {HARDWARE_ID} from {inf}.",
            "Drivers installed successfully.",
        ],
    )
    return 0


def _remove(state: State, target: str) -> int:
    if not elevated(state):
        emit(state, ["devcon.exe failed."])
        return 2
    instance = target.removeprefix("@")
    found = [d for d in state["devices"] if d["instance"].lower() == instance.lower()]
    if not found:
        emit(state, ["No devices were removed."])
        return 2
    device = found[0]
    state["devices"].remove(device)
    state["adapters"] = [a for a in state["adapters"] if a["name"] != device.get("adapter")]
    emit(state, [f"{device['instance']:<60}: Removed", "1 device(s) were removed."])
    return 0

"""Human output: plans, drift reports and host state as lines of text.

Colour only on a terminal and never with NO_COLOR set; piped output is plain text, one
item a line, never wrapped, so it greps and diffs well. rich is imported only when
colour is actually used, which keeps cron runs of `drift` fast.
"""

from __future__ import annotations

import difflib
import os
import sys
from typing import Any, TextIO

from dsrctl.model import (
    AddressState,
    FileState,
    RouteState,
    TunnelState,
    split_address_id,
    split_id,
)
from dsrctl.plan import Plan
from dsrctl.steps import Step

MARKERS = {"create": ("+", "green"), "update": ("~", "yellow"), "delete": ("-", "red")}


class Output:
    def __init__(self, stream: TextIO | None = None, color: bool | None = None) -> None:
        self.stream = stream or sys.stdout
        if color is None:
            color = self.stream.isatty() and not os.environ.get("NO_COLOR")
        self.color = color
        self._console: Any = None

    def line(self, text: str = "", style: str | None = None) -> None:
        if not self.color or not style:
            self.stream.write(text + "\n")
            self.stream.flush()
            return
        if self._console is None:
            from rich.console import Console

            self._console = Console(file=self.stream, highlight=False, soft_wrap=True)
        from rich.text import Text

        self._console.print(Text(text, style=style))


def describe_resource(resource: str) -> str:
    kind, name = split_id(resource)
    if kind == "address":
        interface, cidr = split_address_id(resource)
        return f"address {cidr} on {interface}"
    if kind == "route" and name.startswith("local:local:"):
        return f"range {name.removeprefix('local:local:')}"  # a VIP range (AnyIP)
    return f"{kind} {name}"


def show_value(value: Any) -> str:
    if value is None:
        return "(absent)"
    if isinstance(value, AddressState):
        if value.version == 4:
            return f"label {value.label}"
        flags = [
            name for name, on in (("deprecated", value.deprecated), ("nodad", value.nodad)) if on
        ]
        return ", ".join(flags) if flags else "preferred, dad"
    if isinstance(value, FileState | TunnelState):
        return value.describe()
    if isinstance(value, RouteState):
        return f"{value.type} route on {value.device}, table {value.table}"
    return str(value)


def step_line(step: Step) -> str:
    marker = MARKERS[step.action][0]
    what = describe_resource(step.resource)
    if step.action == "create":
        text = f"{marker} {what}: {show_value(step.after)}"
    elif step.action == "delete":
        text = f"{marker} {what}: {show_value(step.before)}"
    else:
        text = f"{marker} {what}: {show_value(step.before)} -> {show_value(step.after)}"
    if step.note:
        text += f"  ({step.note})"
    return text


def file_diff(step: Step) -> list[str]:
    before = step.before.content if isinstance(step.before, FileState) else b""
    after = step.after.content if isinstance(step.after, FileState) else b""
    if before == after:
        return []
    lines = difflib.unified_diff(
        before.decode("utf-8", "replace").splitlines(),
        after.decode("utf-8", "replace").splitlines(),
        fromfile="current",
        tofile="wanted",
        lineterm="",
        n=1,
    )
    return list(lines)[2:]


def render_plan(
    out: Output,
    plan: Plan,
    spec_path: str,
    heading: str = "plan",
    below: list[tuple[str, str | None]] | None = None,
) -> None:
    """``below``: for each step, a line (and its style) printed under it (rollback: what
    the host holds now)."""
    out.line(f"dsrctl {heading}: {spec_path}", "bold")
    for note in plan.notes:
        out.line(f"! {note}", "yellow")
    if plan.steps:
        out.line()
    for index, step in enumerate(plan.steps):
        out.line("  " + step_line(step), MARKERS[step.action][1])
        if step.kind == "file":
            for text in file_diff(step):
                out.line("      " + text, "dim")
        if below is not None:
            out.line("      " + below[index][0], below[index][1])
    out.line()
    out.line(plan.summary(), "bold")


def render_rollback(
    out: Output, plan: Plan, journal: str, heading: str, now: list[Any] | None
) -> None:
    """A rollback plan; with ``now`` (dsrctl.rollback.preview), what the host holds now
    under each step, and how many steps are already done or changed since the apply."""
    if now is None:
        render_plan(out, plan, journal, heading=heading)
        return
    render_plan(out, plan, journal, heading=heading, below=rollback_now_lines(plan.steps, now))
    done = sum(1 for seen in now if seen.status == "done")
    differs = sum(1 for seen in now if seen.status == "differs")
    if done or differs:
        out.line(
            f"Of these, {done} already done on the host, {differs} changed since the apply; "
            "the rollback sets every resource to the journal's value all the same.",
            "bold",
        )


def rollback_now_lines(steps: tuple[Step, ...], now: list[Any]) -> list[tuple[str, str | None]]:
    """Under each rollback step, what the host holds now (``now``: dsrctl.rollback.StepNow)
    and whether the step is already done or its resource changed since the apply."""
    lines: list[tuple[str, str | None]] = []
    for step, seen in zip(steps, now, strict=True):
        held = show_value(seen.now)
        if seen.status == "done":
            lines.append(
                (f"host now: {held}: already done (the host holds what the rollback sets)", "dim")
            )
        elif seen.status == "differs":
            lines.append(
                (
                    f"host now: {held}: changed since the apply, which set "
                    f"{show_value(step.before)}; the rollback sets {show_value(step.after)} "
                    "all the same",
                    "bold yellow",
                )
            )
        else:
            lines.append((f"host now: {held}", None))
    return lines


def table_lines(
    header: list[str], rows: list[list[str]], right: frozenset[int] = frozenset()
) -> list[str]:
    """A header row and the rows, columns two spaces apart, each as wide as its widest cell
    (the last column is not padded; columns in ``right`` are aligned right)."""
    widths = [max(len(cells[i]) for cells in [header, *rows]) for i in range(len(header))]
    lines = []
    for cells in [header, *rows]:
        padded = [
            cell.rjust(width) if i in right else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(cells[:-1], widths, strict=False))
        ]
        lines.append("  ".join([*padded, cells[-1]]))
    return lines


def render_drift(out: Output, items: list[dict[str, Any]], plan: Plan, spec_path: str) -> None:
    for note in plan.notes:
        out.line(f"! {note}", "yellow")
    for item, step in zip(items, plan.steps, strict=True):
        expected = "absent" if step.after is None else show_value(step.after)
        actual = "missing" if step.before is None else show_value(step.before)
        out.line(
            f"DRIFT {describe_resource(step.resource)}: expected {expected}, actual {actual}",
            "red",
        )
        if step.kind == "file":  # the lines that changed, as plan shows them
            for text in file_diff(step):
                out.line("      " + text, "dim")
        del item
    if items:
        out.line(f"drift: {len(items)} item(s) differ from {spec_path}", "bold red")
    else:
        out.line(f"in sync: the host matches {spec_path}", "green")


def render_show(out: Output, report: dict[str, Any]) -> None:
    out.line(f"platform: {report.get('platform')}", "bold")
    for key, value in report.get("sysctl", {}).items():
        out.line(f"  {key} = {value}")
    for entry in report.get("interfaces", []):
        state = "up" if entry["up"] else "down"
        effective = entry.get("effective", {})
        sysctl = ", ".join(
            f"{k}={v}"
            + (f" (effective {effective[k]})" if effective.get(k) not in (None, v) else "")
            for k, v in entry["sysctl"].items()
        )
        out.line(f"{entry['name']} (index {entry['index']}, {state}) {sysctl}", "bold")
        for address in entry["addresses"]:
            extra = ", ".join(
                f"{k}={yes_no(v)}" for k, v in address.items() if k not in ("address", "prefix")
            )
            out.line(f"    {address['address']}/{address['prefix']}  {extra}")
    ranges = report.get("ranges")
    if ranges:
        render_ranges(out, ranges)
    tunnels = report.get("tunnels")
    if tunnels:
        from dsrctl.render_tunnels import render_tunnels

        render_tunnels(out, tunnels)
    effective = report.get("effective")
    if effective:
        render_effective(out, effective)
    persistence = report.get("persistence")
    if persistence:
        render_persistence(out, persistence)
    records = report.get("dsrctl")
    if records:
        render_records(out, records)


def render_ranges(out: Output, ranges: list[dict[str, Any]]) -> None:
    """The VIP ranges (dsrctl.linux.ranges): local routes on the host, and those dsrctl
    manages, also when they are missing."""
    out.line("VIP ranges (local routes: every address of a range is this host's own):", "bold")
    for entry in ranges:
        where = f" on {entry['device']}" if entry["device"] else ""
        if entry["table"] != "local" or entry["type"] != "local":
            where += f" ({entry['type']}, table {entry['table']})"
        if not entry["managed"]:
            status = "not managed by dsrctl"
        elif entry["created_by_dsrctl"]:
            status = "managed by dsrctl, created by dsrctl: yes"
        else:
            status = "managed by dsrctl, created by dsrctl: no (there before dsrctl)"
        if entry["on_host"]:
            text = f"    {entry['range']}{where}  proto {entry['protocol']}, {status}"
            out.line(text)
        else:
            out.line(f"    {entry['range']}{where}  missing from the host, {status}", "yellow")


def render_effective(out: Output, report: dict[str, Any]) -> None:
    """What the kernel acts on for the interfaces that matter to DSR (dsrctl.linux.effective):
    max(all, interface), and the sysctl.d line that sets each value at boot."""
    out.line(
        "ARP and reverse-path filter of the interfaces that matter (the kernel acts on "
        f"max(all, interface)), with the sysctl.d line that sets each at boot (under "
        f"{report['root']}):",
        "bold",
    )
    rows = []
    problems = []
    for entry in report["interfaces"]:
        for leaf, value in entry["values"].items():
            effective = "-" if entry["name"] in ("all", "default") else value["effective"]
            boot = value["boot_where"]
            if boot is None:
                boot = (
                    "no line (kernel default)"
                    if entry["name"] in ("all", "default", "lo")
                    else "no line: starts from conf.default"
                )
            shown = "absent" if value["own"] is None else str(value["own"])
            rows.append(
                [
                    entry["name"],
                    entry["role"],
                    leaf,
                    shown,
                    str(effective).replace("None", "?"),
                    boot,
                ]
            )
            if value["problem"]:
                problems.append(f"{entry['name']} {leaf} {value['effective']}: {value['problem']}")
    for text in table_lines(
        ["interface", "role", "key", "own", "effective", "set at boot by"], rows
    ):
        out.line("  " + text)
    for text in problems:
        out.line(f"  ! {text}", "yellow")


CREATED_YES = "created by dsrctl: yes (apply removes it when the spec drops it)"
CREATED_NO = (
    "created by dsrctl: no (they were there before dsrctl: apply never removes them; when the "
    "spec drops one, an address stays in place and a sysctl or file gets its earlier value back)"
)


def render_records(out: Output, records: dict[str, Any]) -> None:
    """What the state directory records: which resources dsrctl manages, and for each
    whether dsrctl created it (and so removes it when the spec no longer names it)."""
    out.line(f"dsrctl state directory: {records['state_dir']}")
    for note in records.get("notes", []):
        out.line(f"! {note}", "yellow")
    created = records.get("created_by_dsrctl", [])
    managed = int(records.get("managed_resources", 0))
    out.line(f"dsrctl manages {managed} resource(s):")
    for resource in created:
        out.line(f"  {describe_resource(resource)}: {CREATED_YES}")
    others = managed - len(created)
    if others:
        what = "the other" if created else "all"
        out.line(f"  {what} {others}: {CREATED_NO}")


def yes_no(value: Any) -> str:
    """Booleans as an operator says them."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def render_persistence(out: Output, report: dict[str, Any]) -> None:
    """Who configures the interface at boot (providers.linux.persist.detect)."""
    interface, root = report["interface"], report["root"]
    out.line(f"boot configuration of {interface} (under {root}):", "bold")
    _render_claims(out, report["claims"], interface, "  ")
    if "networkmanager_version" in report:
        out.line(f"  NetworkManager version: {report['networkmanager_version']}")
    uplink = report.get("uplink")
    if uplink:
        out.line(f"  uplink {uplink['interface']} (the default route):")
        _render_claims(out, uplink["claims"], uplink["interface"], "    ")
    choice = report["auto"] or "refuses to choose"
    out.line(f"  linux.persist.addresses = 'auto' -> {choice}: {report['auto_reason']}")
    for note in report["notes"]:
        out.line(f"  ! {note}", "yellow")


def _render_claims(out: Output, claims: list[dict[str, Any]], interface: str, indent: str) -> None:
    for claim in claims:
        state = "active" if claim["active"] else f"ignored: {claim['inactive_reason']}"
        out.line(f"{indent}{claim['backend']}: {claim['path']} ({claim['detail']}) [{state}]")
    if not claims:
        out.line(f"{indent}no tool configures {interface}")

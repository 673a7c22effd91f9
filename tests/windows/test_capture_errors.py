"""plan --from-capture with a damaged or edited capture: one line naming the file, the key
and what is wrong; no traceback (issue 9, finding 9)."""

from __future__ import annotations

import json
import os
from typing import Any

from tests.windows.fake_host import FakeWindows

OFFLINE = {"PATH": os.defpath, "DSRCTL_FAKE_WINDOWS": "/nonexistent"}


def _edited(good: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    data = json.loads(json.dumps(good))
    target = data
    *parents, last = key.split("/")
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target[part]
    if isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value
    return data


def test_a_damaged_capture_is_one_line_naming_the_key(win: FakeWindows) -> None:
    spec = str(win.spec())
    made = win.dsrctl("capture", spec, "--output", "server.json")
    assert made.returncode == 0, made.stderr
    good = json.loads((win.root / "server.json").read_text())
    cases: list[tuple[dict[str, Any] | bytes, tuple[str, ...]]] = [
        (_edited(good, "notes", 5), ("notes = 5: must be a list",)),
        (_edited(good, "encoding", "no-such-codec"), ("encoding = ", "unknown text encoding")),
        (_edited(good, "commands/0/argv", "netsh"), ("commands[0].argv", "must be a list")),
        (_edited(good, "commands/0/returncode", True), ("commands[0].returncode = true",)),
        (_edited(good, "commands/0", "netsh"), ("commands[0] = ", "must be a table")),
        (_edited(good, "programs", ["netsh"]), ("programs = ", "must be a table")),
        (_edited(good, "programs/netsh", 1), ("programs.netsh = 1",)),
        (_edited(good, "ownership", None), ("ownership = None", "must be a table")),
        (_edited(good, "format_version", True), ("format_version = true",)),
        (_edited(good, "platform", "linux"), ('platform = "linux"',)),
        (
            b'{"format": "dsrctl-capture", "x": ' + b"[" * 100000 + b"]" * 100000 + b"}",
            ("nested too deeply",),
        ),
        (b'{"format": "dsrctl-capture", "format_version": NaN}', ("NaN",)),
        (b"[1, 2, 3]", ("is not a dsrctl capture",)),
    ]
    forged = {"created": "false", "original": None, "since": ""}
    cases.append(
        (_edited(good, "ownership/resources", {"sysctl:x": forged}), ('created = "false"',))
    )
    problems = []
    for content, expected in cases:
        path = win.root / "bad.json"
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(json.dumps(content))
        result = win.dsrctl("plan", "--from-capture", "bad.json", spec, env=OFFLINE)
        lines = result.stderr.splitlines()
        ok = (
            result.returncode == 1
            and len(lines) == 1
            and "Traceback" not in result.stdout + result.stderr
            and "bad.json" in result.stderr
            and all(text in result.stderr for text in expected)
        )
        if not ok:
            problems.append(f"{expected}: exit {result.returncode}: {result.stderr[-300:]!r}")
    assert problems == []
    assert win.writes() == []

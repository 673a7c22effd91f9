"""Saved plans: `dsrctl plan --out FILE`, then `dsrctl apply FILE` in the change window.

The file holds the plan, the spec's path and sha256, and a fingerprint of the host as
observed (the managed resources' values). Applying it re-reads the spec and the host
under the lock and refuses, naming what changed, unless both still match: the plan that
was reviewed is exactly the plan that runs (Terraform refuses a stale plan the same way).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from typing import Any

from dsrctl.errors import DsrctlError, SpecError
from dsrctl.planning import PlanResult
from state.statedir import write_atomic

SAVED_FORMAT = "dsrctl-saved-plan"
SAVED_VERSION = 1


def fingerprint(observed: dict[str, Any]) -> str:
    canonical = json.dumps(observed, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def save_plan(
    path: str, spec_path: str, spec_digest: str, platform: str, result: PlanResult
) -> None:
    data = {
        "format": SAVED_FORMAT,
        "format_version": SAVED_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "platform": platform,
        "spec": os.path.abspath(spec_path),
        "spec_sha256": spec_digest,
        "host_sha256": fingerprint(result.have_plain),
        "observed": result.have_plain,
        "plan": result.plan.to_json(os.path.abspath(spec_path)),
    }
    try:
        write_atomic(path, json.dumps(data, indent=1, default=str).encode() + b"\n", 0o600)
    except OSError as exc:
        raise DsrctlError(f"cannot write the plan to {path}: {exc.strerror}") from None


def load_saved(path: str) -> dict[str, Any] | None:
    """The saved plan in ``path``, or None when the file is not one (a spec, say)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(1)
            if head != b"{":
                return None
            data = json.loads(head + handle.read())
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        return None
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("format") != SAVED_FORMAT:
        return None
    if data.get("format_version") != SAVED_VERSION:
        raise SpecError(
            path, "format_version", data.get("format_version"), "unknown saved-plan version"
        )
    return data


def check_saved(saved: dict[str, Any], spec_digest: str, result: PlanResult, path: str) -> None:
    """Refuse a stale plan: the spec or the host changed since it was saved."""
    if saved["spec_sha256"] != spec_digest:
        raise DsrctlError(
            f"saved plan {path} is stale: the spec {saved['spec']} changed since the plan was "
            f"made (sha256 {saved['spec_sha256'][:12]} -> {spec_digest[:12]}); make a new plan"
        )
    if saved["host_sha256"] != fingerprint(result.have_plain):
        then: dict[str, Any] = saved.get("observed", {})
        now = result.have_plain
        changed = [
            f"{resource} (was {_shown(then.get(resource))}, now {_shown(now.get(resource))})"
            for resource in sorted(set(then) | set(now))
            if then.get(resource) != now.get(resource)
        ]
        raise DsrctlError(
            f"saved plan {path} is stale: the host changed since the plan was made: "
            + "; ".join(changed[:10])
            + "; make a new plan"
        )
    planned_now = result.plan.to_json(saved["spec"])["changes"]
    if planned_now != saved["plan"]["changes"]:
        raise DsrctlError(
            f"saved plan {path} is stale: the plan dsrctl makes now differs from the saved "
            "one (the ownership records changed?); make a new plan"
        )


def _shown(value: Any) -> str:
    from dsrctl.errors import toml_literal

    return "absent" if value is None else toml_literal(value)

"""Test-only Ansible callback: append every task result to the JSON-lines file named by
DSRCTL_TEST_RESULTS, so that tests can assert on per-host results (changed, diff, plan,
failed, msg). ansible-core has no JSON callback of its own (it is in ansible.posix)."""

from __future__ import annotations

import json
import os
from typing import Any

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: record_results
type: aggregate
short_description: write each task result to a JSON-lines file (dsrctl tests)
description:
  - Writes one JSON object per task result to the file named by DSRCTL_TEST_RESULTS.
requirements:
  - enable it with ANSIBLE_CALLBACKS_ENABLED=record_results
"""


class CallbackModule(CallbackBase):  # type: ignore[misc]
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "record_results"
    CALLBACK_NEEDS_ENABLED = True

    def _record(self, status: str, result: Any) -> None:
        # ansible-core 2.19 names them task/host/result; older versions only _task/...
        task = getattr(result, "task", None) or result._task
        host = getattr(result, "host", None) or result._host
        data = getattr(result, "result", None)
        if data is None:
            data = result._result
        record = {
            "task": task.get_name(),
            "host": host.get_name(),
            "status": status,
            "result": data,
        }
        with open(os.environ["DSRCTL_TEST_RESULTS"], "a") as handle:
            handle.write(json.dumps(record, default=str) + "\n")

    def v2_runner_on_ok(self, result: Any) -> None:
        self._record("ok", result)

    def v2_runner_on_failed(self, result: Any, ignore_errors: bool = False) -> None:
        self._record("failed", result)

    def v2_runner_on_skipped(self, result: Any) -> None:
        self._record("skipped", result)

    def v2_runner_on_unreachable(self, result: Any) -> None:
        self._record("unreachable", result)

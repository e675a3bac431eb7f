# Test callback: with IMGBAKE_TEST_RESULTS set, writes every task's result
# as one JSON line {"task": NAME, "result": {...}} to that file
# (TestAnsibleModuleHostSameResults compares two runs).
from __future__ import annotations

import json
import os

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "task_results"
    CALLBACK_NEEDS_ENABLED = False

    def _write(self, result):
        path = os.environ.get("IMGBAKE_TEST_RESULTS")
        if not path:
            return
        with open(path, "a") as f:
            f.write(json.dumps({"task": result._task.get_name(), "result": result._result}, sort_keys=True, default=str) + "\n")

    v2_runner_on_ok = _write
    v2_runner_on_failed = lambda self, result, ignore_errors=False: self._write(result)  # noqa: E731
    v2_runner_on_skipped = _write

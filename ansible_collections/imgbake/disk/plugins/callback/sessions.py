# Callback plugin: stop the play's imgbake sessions when the playbook ends.

from __future__ import annotations

DOCUMENTATION = r"""
name: sessions
type: notification
author: imgbake
short_description: Stop the imgbake disk sessions at the end of the playbook (commit, or discard after a failure)
description:
  - Required by the C(imgbake.disk.imgbake) connection plugin, which refuses to run without it.
  - At the start of the playbook it makes a private state directory for the play's sessions.
  - On the playbook's final stats it stops every session the play started. A session is committed
    into its image unless a host that used it failed or was unreachable (rescued and ignored errors
    do not count) or the play was aborted; then it is discarded, so a half-applied play never lands
    in the image, unless that disk's C(ansible_imgbake_on_failure) is C(commit).
  - If ansible-playbook is interrupted before the end, the sessions are discarded.
  - A commit that fails is reported and makes ansible-playbook exit with status 3.
requirements:
  - enable it in ansible.cfg, C(callbacks_enabled = imgbake.disk.sessions)
"""

import atexit
import os
import secrets
import shutil

from ansible.plugins.callback import CallbackBase
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.imgbake.disk.plugins.plugin_utils import session as S


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "notification"
    CALLBACK_NAME = "imgbake.disk.sessions"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super(CallbackModule, self).__init__(*args, **kwargs)
        self._pid = os.getpid()
        self._state_dir = None
        self._aborted = False
        self._failed = set()
        self._setup()

    def _setup(self):
        if self._state_dir:
            return
        self._state_dir = S.make_state_dir()
        # Inherited by the task workers, which are forked from this process.
        os.environ[S.ENV_STATE] = self._state_dir
        os.environ[S.ENV_OWNER] = str(self._pid)
        os.environ[S.ENV_RUN] = secrets.token_hex(4)
        atexit.register(self._at_exit)

    def v2_playbook_on_start(self, playbook):
        self._setup()

    def v2_runner_on_failed(self, result, ignore_errors=False):
        if not ignore_errors:
            self._failed.add(result._host.get_name())

    def v2_runner_on_unreachable(self, result):
        self._failed.add(result._host.get_name())

    def v2_playbook_on_no_hosts_remaining(self):
        self._aborted = True

    def v2_playbook_on_stats(self, stats):
        failed = set()
        for h in stats.processed:
            s = stats.summarize(h)
            if s.get("failures") or s.get("unreachable"):
                failed.add(h)
        errors = self._stop_all(failed, self._aborted)
        if errors:
            for e in errors:
                self._display.error(e)
            raise SystemExit(3)

    def _at_exit(self):
        # The playbook did not reach its end (interrupted, crashed): discard.
        if os.getpid() != self._pid or not self._state_dir:
            return
        try:
            self._stop_all(None, True)
        except Exception as e:  # exiting anyway; the owner watchdog discards
            self._display.warning("imgbake: stopping sessions: %s" % to_native(e))

    def _stop_all(self, failed, aborted):
        """Stop every recorded session; returns the errors of commits."""
        if not self._state_dir or not os.path.isdir(self._state_dir):
            return []
        errors = []
        targets = {}
        for rec in S.recorded_sessions(self._state_dir):
            target = S.Target.from_dict(rec.get("target", {}), self._state_dir)
            targets[(target.remote, target.ssh_args)] = target
            bad_hosts = sorted(h for h in rec.get("hosts", []) if failed is None or h in failed)
            bad = aborted or bool(bad_hosts)
            discard = bad and (failed is None or rec.get("on_failure") != "commit")
            where = rec["disk"] + ((" on " + target.remote) if target.remote else "")
            args = ["session", "stop"] + (["--discard"] if discard else []) + [rec["name"]]
            try:
                rc, out, err = target.run(args, timeout=3600)
            except Exception as e:
                rc, err = -1, to_native(e).encode()
            err = to_native(err).strip()
            if rc == 0:
                if discard:
                    why = "the play did not finish" if failed is None or aborted else \
                        "a task failed for %s" % ", ".join(bad_hosts)
                    self._display.display("imgbake: %s: changes discarded (%s); the image is unchanged" % (where, why),
                                          color="bright red" if failed is not None else None)
                else:
                    self._display.display("imgbake: %s: changes committed into the image" % where, color="green")
            elif discard and "no such session" in err and not rec.get("started"):
                pass  # never started (its first task failed to boot it)
            elif discard:
                self._display.warning("imgbake: %s: stopping the session: %s" % (where, err))
            else:
                errors.append("imgbake: %s: the changes were NOT committed: %s" % (where, err or "rc %d" % rc))
            S.forget_session(self._state_dir, rec["name"])
        for t in targets.values():
            t.close_connection()
        shutil.rmtree(self._state_dir, ignore_errors=True)
        self._state_dir = None
        return errors

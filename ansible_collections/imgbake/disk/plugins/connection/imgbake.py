# Connection plugin: run Ansible tasks inside a VM disk image through an
# imgbake session (one appliance boot per disk for the whole play).

from __future__ import annotations

DOCUMENTATION = r"""
name: imgbake
author: imgbake
short_description: Run tasks inside a VM disk image, offline, one appliance boot per play
description:
  - Runs commands and transfers files inside a qcow2 or raw disk image through C(imgbake session).
    The first task on a disk boots the imgbake appliance and mounts the image; every later task
    reuses it; at the end of the playbook the C(imgbake.disk.sessions) callback stops the session
    and commits the changes into the image, or discards them when a task failed for a host that
    used the disk (see O(on_failure)).
  - The C(imgbake.disk.sessions) callback must be enabled (C(callbacks_enabled = imgbake.disk.sessions)
    in ansible.cfg); without it the plugin refuses to start, since nothing would commit the changes.
  - Changes go to a private overlay until the end of the play; if ansible-playbook dies, the session
    notices (owner watchdog) and discards them, and the image stays byte-identical.
  - Commands run as root, chrooted into the image, with the appliance's kernel. Targets need python3 in
    the image for most modules (M(ansible.builtin.raw) works without).
  - Pipelined modules run in the session's module host (O(module_host)), one python per session instead
    of one per task. Every request travels over the session's control socket (forwarded over the one ssh
    connection with O(remote)), not through an imgbake process per command.
options:
  disk:
    description:
      - Path of the disk image; on the O(remote) host when that is set.
      - Defaults to the host's address (C(ansible_host), else its inventory name), so
        delegating a task to a host named after the disk path works.
    type: str
    vars:
      - name: ansible_imgbake_disk
  format:
    description: Format of the disk, C(raw) or C(qcow2) (default detected from its header).
    type: str
    vars:
      - name: ansible_imgbake_format
  mount:
    description:
      - Mount by hand instead of detecting the image's filesystems, like C(imgbake -m).
      - A list (or comma-separated string) of C(DEVICE[:MOUNTPOINT]), or a partition number
        N meaning the root filesystem is on partition N of the first disk (C(/dev/vdaN)).
    type: raw
    vars:
      - name: ansible_imgbake_mount
  remote:
    description:
      - ssh destination (C([user@]host)) of a hypervisor where imgbake is installed and the disk lives.
        Commands and file transfers travel over one ssh connection for the whole play.
    type: str
    vars:
      - name: ansible_imgbake_remote
  ssh_args:
    description: Extra ssh options for O(remote), e.g. C(-p 2222 -i ~/.ssh/hv).
    type: str
    default: ""
    vars:
      - name: ansible_imgbake_ssh_args
  command:
    description: The imgbake command (on the O(remote) host when set), e.g. C(/usr/local/bin/imgbake).
    type: str
    default: imgbake
    env:
      - name: IMGBAKE_COMMAND
    vars:
      - name: ansible_imgbake_command
  on_failure:
    description:
      - What happens to the disk's changes at the end of a play in which a task failed (or the host was
        unreachable) for a host that used the disk. C(discard) leaves the image as it was.
    type: str
    default: discard
    choices: [discard, commit]
    vars:
      - name: ansible_imgbake_on_failure
  idle_timeout:
    description: The session discards itself after this long without a request (a Go duration).
    type: str
    default: 15m
    vars:
      - name: ansible_imgbake_idle_timeout
  network:
    description: Give the appliance user-mode networking (package steps of C(imgbake session run)).
    type: bool
    default: false
    vars:
      - name: ansible_imgbake_network
  memory:
    description: Appliance memory in MiB.
    type: int
    default: 512
    vars:
      - name: ansible_imgbake_memory
  per_task:
    description:
      - Boot a fresh appliance for every task and commit that task's changes when the task ends, the way a
        connection that launches libguestfs per task works. Much slower (one boot per task instead of one per
        play) and a failed task's changes are committed too, since a connection cannot see task results;
        O(on_failure) only covers a task whose session could not be stopped. Meant for comparisons
        (C(make bench) measures this mode against the default) and for plays that need every task's changes
        in the image at once.
    type: bool
    default: false
    vars:
      - name: ansible_imgbake_per_task
  pipelining:
    description:
      - Send module code on the command's standard input instead of copying it into the image first (Ansible's
        pipelining). On by default for this connection, since it saves a file transfer per task and is what lets
        O(module_host) run modules.
    type: bool
    default: true
    env:
      - name: ANSIBLE_PIPELINING
    ini:
      - section: defaults
        key: pipelining
      - section: connection
        key: pipelining
    vars:
      - name: ansible_pipelining
  module_host:
    description:
      - Run pipelined modules in the module host, a Python started once per session (per interpreter) inside
        the image that runs each module in a forked child of its warm interpreter, instead of starting a new
        python3 for every task. Results are the same as without it; turn it off to run every module in a
        fresh interpreter. Commands that are not a pipelined module (raw, script, shell strings, async)
        always run as plain commands, and so does everything when the image has no usable python.
    type: bool
    default: true
    env:
      - name: IMGBAKE_MODULE_HOST
    vars:
      - name: ansible_imgbake_module_host
  task_host:
    description: Internal; the inventory host a task runs for (failures of that host discard the disk).
    type: str
    vars:
      - name: inventory_hostname
"""

EXAMPLES = r"""
# ansible.cfg
#   [defaults]
#   callbacks_enabled = imgbake.disk.sessions

# inventory: the disk is the host
# [images]
# /srv/images/web.qcow2 ansible_connection=imgbake.disk.imgbake ansible_python_interpreter=/usr/bin/python3

- hosts: images
  gather_facts: false
  tasks:
    - ansible.builtin.copy:
        dest: /etc/motd
        content: "baked by Ansible\n"

# or delegate to a disk, also on a remote hypervisor
- hosts: hypervisor
  gather_facts: false
  tasks:
    - ansible.builtin.add_host:
        name: "{{ disk_path }}"
        ansible_connection: imgbake.disk.imgbake
        ansible_imgbake_remote: "admin@{{ ansible_host }}"
        ansible_python_interpreter: /usr/bin/python3
      changed_when: false
    - ansible.builtin.ping:
      delegate_to: "{{ disk_path }}"
"""

import base64
import hashlib
import importlib.util
import io
import json
import marshal
import os
import re
import secrets
import struct
import sys
import time
import warnings
import zipfile

from ansible.errors import AnsibleConnectionFailure, AnsibleError, AnsibleFileNotFound
from ansible.module_utils.common.text.converters import to_bytes, to_native
from ansible.plugins.connection import ConnectionBase
from ansible.utils.display import Display

from ansible_collections.imgbake.disk.plugins.plugin_utils import session as S

display = Display()

# A pipelined module, as Ansible's action plugins build it for a POSIX shell
# with no environment, become or chdir: the interpreter reads the module
# payload from stdin.
_PIPELINED_MODULE = re.compile(r"^/bin/sh -c '(/[A-Za-z0-9_./+-]+) && sleep 0'$")
_ANSIBALLZ = b"\n_ANSIBALLZ_WRAPPER = True"
_ZIPDATA = re.compile(br'\n    ZIPDATA = """([A-Za-z0-9+/=\s]*)"""\n')
_MAGIC = importlib.util.MAGIC_NUMBER.hex()


def _compile_quietly(source, filename):
    """compile(source) as Python compiles a module or stdin, or None when
    it fails or warns (the image's Python must say so itself)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            code = compile(source, filename, "exec", dont_inherit=True)
        except Exception:
            return None
    return None if caught else code


def _compiled_bundle(payload, sent, with_script=True):
    """The payload script and the .py files of its zip that are not in
    sent ("FILE:CRC" keys), compiled here as python3 reading the script
    from stdin and zipimport compile them in the image: a marshal blob
    {"files": {file: (CRC, code)}, "main": code} for the module host, which
    uses it only if its Python has the same bytecode magic, and the keys
    it covers. Without with_script the script is left to the image (its
    code is as large as the script itself: too much to send twice over a
    remote link for what it saves)."""
    main = _compile_quietly(payload, "<stdin>") if with_script else None
    m = _ZIPDATA.search(payload)
    try:
        z = zipfile.ZipFile(io.BytesIO(base64.b64decode(m.group(1)))) if m else None
    except Exception:
        z = None
    files, keys = {}, []
    for info in z.infolist() if z else ():
        key = "%s:%d" % (info.filename, info.CRC)
        if not info.filename.endswith(".py") or key in sent:
            continue
        keys.append(key)
        code = _compile_quietly(z.read(info).replace(b"\r\n", b"\n").replace(b"\r", b"\n"), "<imgbake-module-host>")
        if code is not None:
            files[info.filename] = (info.CRC, code)
    if not files and main is None:
        return b"", keys
    return marshal.dumps({"files": files, "main": main}), keys


# What may be one of the housekeeping commands ActionBase sends (the module
# host knows their exact shapes): a plain /bin/sh -c '... && sleep 0'.
_HOUSEKEEPING = re.compile(r"^/bin/sh -c '(echo ~|\( umask 77 && mkdir -p |chmod u\+x |rm -f -r )[^']* && sleep 0'$")

# How the session starts the module host: two shells, as a pipelined module
# runs, so it sees the same environment; then exec PYTHON -c SOURCE.
_HOST_SHELL = '/bin/sh -c \'exec "$0" -c "$1"\' "$0" "$1"'

with open(os.path.join(os.path.dirname(S.__file__), "modhost.py"), "rb") as _f:
    _HOST_SOURCE = _f.read().decode("utf-8")
_HOST_VERSION = hashlib.sha256(_HOST_SOURCE.encode()).hexdigest()[:12]


class Connection(ConnectionBase):
    """Commands and files through an imgbake session."""

    transport = "imgbake.disk.imgbake"
    has_pipelining = True
    has_tty = False
    default_user = "root"

    def __init__(self, *args, **kwargs):
        super(Connection, self).__init__(*args, **kwargs)
        self._target = None
        self._name = None
        self._control = None

    def _disk(self):
        disk = self.get_option("disk") or self._play_context.remote_addr
        if not disk:
            raise AnsibleError("imgbake: no disk: set ansible_imgbake_disk")
        if not self.get_option("remote"):
            disk = os.path.realpath(os.path.expanduser(disk))
        return disk

    def _mount_args(self):
        m = self.get_option("mount")
        if m in (None, "", []):
            return []
        if isinstance(m, int) or (isinstance(m, str) and m.isdigit()):
            return ["-m", "/dev/vda%d" % int(m)]
        if isinstance(m, str):
            m = [x.strip() for x in m.split(",") if x.strip()]
        out = []
        for spec in m:
            out += ["-m", str(spec)]
        return out

    def _connect(self):
        if self._connected:
            return self
        try:
            state_dir, owner, run_id = S.state()
        except S.SessionError as e:
            raise AnsibleError("imgbake: %s" % e)
        remote = self.get_option("remote")
        self._target = S.Target(self.get_option("command"), remote, self.get_option("ssh_args"), state_dir)
        disk = self._disk()
        self._name = S.session_name(run_id, remote, disk)
        if self.get_option("per_task"):
            # A session of its own for this task, stopped in close().
            self._name += "-" + secrets.token_hex(4)
            started, mode = False, []
        else:
            # Only the play's first task on the disk may boot it: if the session
            # ended since (idle timeout, crash), its changes are gone and the
            # play must not go on as if they were there.
            started = S.session_started(state_dir, self._name)
            mode = ["--attach" if started else "--reuse"]
            if started and self._reattach(state_dir):
                self._connected = True
                return self
        args = ["session", "start"] + mode + ["--print-socket", "--name", self._name, "-a", disk,
                "--idle-timeout", self.get_option("idle_timeout"), "--memory", str(self.get_option("memory"))]
        if self.get_option("format"):
            args += ["--format", self.get_option("format")]
        if self.get_option("network"):
            args.append("--network")
        args += self._mount_args()
        # The session discards itself when its owner exits: ansible-playbook
        # here, or the sshd serving our one connection on a remote host
        # (which ends when ansible-playbook does).
        args += ["--owner-pid", S.REMOTE_OWNER if remote else str(owner)]
        # Recorded before starting, so even a session whose start is cut
        # short is stopped (and discarded) at the end of the play.
        S.record_session(state_dir, self._name, self._target, disk, self.get_option("task_host"),
                         self.get_option("on_failure"))
        display.vvv("IMGBAKE SESSION %s FOR %s%s" % (self._name, disk, (" ON " + remote) if remote else ""),
                    host=self._play_context.remote_addr)
        try:
            rc, out, err = self._target.run(args)
        except (S.SessionError, OSError) as e:
            raise AnsibleConnectionFailure("imgbake: %s" % to_native(e))
        if rc != 0:
            raise AnsibleConnectionFailure("imgbake: starting the session for %s failed (rc %d): %s" % (
                disk, rc, to_native(err).strip()))
        lines = to_native(out).splitlines()
        if len(lines) < 2:
            raise AnsibleConnectionFailure("imgbake: session start printed no socket: %r" % to_native(out))
        sock = lines[1].strip()
        try:
            if remote:
                local = os.path.join(state_dir, "sock-" + hashlib.sha256(self._name.encode()).hexdigest()[:12])
                S.forward_socket(self._target, local, sock)
                sock = local
        except (S.SessionError, OSError) as e:
            raise AnsibleConnectionFailure("imgbake: %s" % to_native(e))
        self._control = S.Control(sock)
        if not self.get_option("per_task"):
            S.record_socket(state_dir, self._name, sock)
        if not started:
            S.mark_started(state_dir, self._name)
        self._connected = True
        return self

    def _reattach(self, state_dir):
        """Use the session an earlier task started: one status request on
        its recorded socket. False sends the caller the long way (session
        start --attach, which says what became of the session)."""
        sock = S.session_socket(state_dir, self._name)
        if not sock:
            return False
        control = S.Control(sock)
        try:
            res = control.call({"op": "status"})
        except S.ControlError:
            return False
        st = res.get("status") or {}
        if res.get("error") or st.get("name") != self._name or st.get("state") != "ready":
            return False
        self._control = control
        return True

    def exec_command(self, cmd, in_data=None, sudoable=True):
        super(Connection, self).exec_command(cmd, in_data=in_data, sudoable=sudoable)
        display.vvv("EXEC %s" % cmd, host=self._play_context.remote_addr)
        cmd = to_native(cmd)
        python = self._module_python(cmd, in_data)
        if python:
            res = self._run_in_module_host(python, {}, in_data)
            if res is not None:
                return res
        elif not in_data and self.get_option("module_host") and _HOUSEKEEPING.match(cmd):
            # Ansible's mkdtemp, chmod, rm and ~ expansion around a module,
            # done by the module host that served the last module (no shell
            # and no child processes); anything unexpected and the shell
            # runs it below.
            python = S.module_host_python(self._target.state_dir, self._name)
            if python:
                res = self._run_in_module_host(python, {"shell": cmd}, b"")
                if res is not None:
                    return res
        # cmd is what Ansible would hand to a login shell: run it with the image's /bin/sh.
        out, err = bytearray(), bytearray()
        started = time.time()
        res = self._call({"op": "exec", "argv": ["/bin/sh", "-c", cmd]}, data=in_data, on_stdout=out.extend,
                         on_stderr=err.extend)
        display.vvvv("IMGBAKE EXEC rc %s in %.3fs" % (res.get("rc"), time.time() - started), host=self._play_context.remote_addr)
        if res.get("error"):
            code = res.get("code") or S.SESSION_FAILED
            if code == S.SESSION_FAILED:
                raise AnsibleConnectionFailure("imgbake: session %s failed: %s" % (self._name, res["error"]))
            err += to_bytes("imgbake: session %s: %s\n" % (self._name, res["error"]))
            return code, bytes(out), bytes(err)
        return res.get("rc", 0), bytes(out), bytes(err)

    def _call(self, req, data=None, on_stdout=None, on_stderr=None):
        try:
            return self._control.call(req, data=data, on_stdout=on_stdout, on_stderr=on_stderr)
        except S.SessionError as e:
            raise AnsibleConnectionFailure("imgbake: session %s: %s" % (self._name, to_native(e)))

    def _module_python(self, cmd, in_data):
        """The interpreter of a pipelined module payload the module host can
        run, or None."""
        if not in_data or not self.get_option("module_host"):
            return None
        m = _PIPELINED_MODULE.match(cmd)
        if not m or _ANSIBALLZ not in in_data[:4096]:
            return None
        if S.module_host_unavailable(self._target.state_dir, self._name, m.group(1)):
            return None
        return m.group(1)

    def _run_in_module_host(self, python, header, in_data):
        """Run the payload (or the housekeeping command header names) in the
        session's module host for python: (rc, stdout, stderr), or None when
        there is no module host for it or it leaves the command to the
        shell."""
        keys = []
        if "shell" not in header:
            code = S.module_host_code(self._target.state_dir, self._name, python)
            if code.get("magic") in (None, _MAGIC):
                blob, keys = _compiled_bundle(in_data, set(code.get("sent", ())), with_script=not self._target.remote)
                if blob:
                    header = dict(header, compiled={"magic": _MAGIC, "optimize": sys.flags.optimize, "size": len(blob)})
                    in_data = blob + in_data
        header = json.dumps(header).encode("utf-8")
        body = struct.pack(">I", len(header)) + header + in_data
        answer = bytearray()
        req = {"op": "service", "service": "modhost-%s:%s" % (_HOST_VERSION, python),
               "argv": ["/bin/sh", "-c", _HOST_SHELL, python, _HOST_SOURCE]}
        res = self._call(req, data=body, on_stdout=answer.extend)
        if res.get("no_service"):
            display.vvv("IMGBAKE no module host for %s (%s): running modules with a new interpreter each" % (
                python, res.get("error")), host=self._play_context.remote_addr)
            S.mark_no_module_host(self._target.state_dir, self._name, python)
            return None
        if res.get("error"):
            raise AnsibleConnectionFailure("imgbake: session %s: module host: %s" % (self._name, res["error"]))
        try:
            n = struct.unpack(">I", bytes(answer[:4]))[0]
            h = json.loads(bytes(answer[4:4 + n]).decode("utf-8"))
            if h.get("fallback"):
                return None
            rest = bytes(answer[4 + n:])
            out, err = rest[:h["out"]], rest[h["out"]:h["out"] + h["err"]]
        except (ValueError, KeyError, struct.error) as e:
            raise AnsibleConnectionFailure("imgbake: session %s: a bad answer from the module host: %s" % (self._name, e))
        if "warm" in h:
            display.vvv("IMGBAKE MODULE HOST pid %s (warm %s): rc %d in %ss" % (h.get("pid"), h["warm"], h["rc"], h.get("seconds")),
                        host=self._play_context.remote_addr)
            # Where the next tasks' housekeeping goes, and which compiled
            # files that host has; a bundle it turned down is not sent again.
            magic = h.get("magic")
            if h.get("compiled_used") is False:
                magic = "refused"
            S.record_module_host(self._target.state_dir, self._name, python, h.get("pid"), magic,
                                 keys if h.get("compiled_used") else [])
        else:
            display.vvv("IMGBAKE MODULE HOST pid %s did it in %ss" % (h.get("pid"), h.get("seconds")),
                        host=self._play_context.remote_addr)
        return h["rc"], out, err

    def put_file(self, in_path, out_path):
        super(Connection, self).put_file(in_path, out_path)
        display.vvv("PUT %s TO %s" % (in_path, out_path), host=self._play_context.remote_addr)
        b_in = to_bytes(in_path, errors="surrogate_or_strict")
        if not os.path.exists(b_in):
            raise AnsibleFileNotFound("file or module does not exist: %s" % in_path)
        req = {"op": "put", "image": out_path, "exact": True}
        err = bytearray()
        if self._target.remote:
            with open(b_in, "rb") as f:
                res = self._call(req, data=f, on_stderr=err.extend)
        else:
            req["host"] = os.path.abspath(in_path)
            res = self._call(req, on_stderr=err.extend)
        if res.get("error"):
            raise AnsibleError("imgbake: failed to transfer %s to %s: %s" % (in_path, out_path, res["error"]))

    def fetch_file(self, in_path, out_path):
        super(Connection, self).fetch_file(in_path, out_path)
        display.vvv("FETCH %s TO %s" % (in_path, out_path), host=self._play_context.remote_addr)
        req = {"op": "fetch", "image": in_path, "exact": True}
        if self._target.remote:
            tmp = to_bytes(out_path + ".imgbake-part", errors="surrogate_or_strict")
            try:
                with open(tmp, "wb") as f:
                    res = self._call(req, on_stdout=f.write)
            except BaseException:
                os.unlink(tmp)
                raise
            if res.get("error"):
                os.unlink(tmp)
            else:
                os.rename(tmp, to_bytes(out_path, errors="surrogate_or_strict"))
        else:
            req["host"] = os.path.abspath(out_path)
            res = self._call(req)
        if res.get("error"):
            raise AnsibleError("imgbake: failed to fetch %s to %s: %s" % (in_path, out_path, res["error"]))

    def close(self):
        # By default the session outlives the task: the callback stops it at
        # the end of the play. A per-task session ends with its task.
        if self._connected and self.get_option("per_task"):
            state_dir = self._target.state_dir
            display.vvv("IMGBAKE STOP %s" % self._name, host=self._play_context.remote_addr)
            try:
                rc, out, err = self._target.run(["session", "stop", self._name], timeout=3600)
            except (S.SessionError, OSError) as e:
                rc, err = -1, to_native(e).encode()
            if rc != 0:
                # Left recorded: the callback stops it at the end of the play.
                raise AnsibleError("imgbake: committing the task's changes (session %s) failed: %s" % (
                    self._name, to_native(err).strip()))
            S.forget_session(state_dir, self._name)
        self._connected = False

    def reset(self):
        pass

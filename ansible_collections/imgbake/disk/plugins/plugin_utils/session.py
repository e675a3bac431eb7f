# Shared by the imgbake connection and callback plugins (controller side).
#
# How a play uses imgbake sessions:
#   - the callback plugin (imgbake.disk.sessions) runs in ansible-playbook's
#     own process: at the start of the playbook it makes a private state
#     directory and exports its path, a run id and its pid in the environment,
#     which the forked task workers inherit;
#   - the connection plugin (imgbake.disk.imgbake), in each task's worker,
#     runs `imgbake session start --reuse` for its disk (the first task boots,
#     later ones reuse the running session), records the session in the state
#     directory and sends every command and file through `imgbake session`;
#   - at the end of the playbook the callback stops every recorded session:
#     commit, or discard if a host that used it failed;
#   - if ansible-playbook dies, each session's --owner-pid watchdog discards it.
#
# With ansible_imgbake_remote the imgbake commands run on that host over one
# ssh connection (a ControlMaster whose control socket lives in the private
# state directory). The remote session's owner is that connection's sshd
# process, and a small local watcher ends the connection when
# ansible-playbook dies, so the remote session discards too.

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time

ENV_STATE = "IMGBAKE_ANSIBLE_STATE_DIR"
ENV_OWNER = "IMGBAKE_ANSIBLE_OWNER_PID"
ENV_RUN = "IMGBAKE_ANSIBLE_RUN_ID"

# `imgbake session exec` exits 255 when the session itself failed, as ssh does.
SESSION_FAILED = 255

# In a remote start command, replaced by the remote shell's parent: the sshd
# process serving our one (master) connection.
REMOTE_OWNER = "\0owner\0"


class SessionError(Exception):
    pass


def proc_identity(pid):
    """'pid starttime' of a live process, or None."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
    except OSError:
        return None
    rest = s[s.rindex(")") + 2:].split()
    if len(rest) < 20 or rest[0] in ("Z", "X"):
        return None
    return "%d %s" % (pid, rest[19])


def state():
    """(state_dir, owner_pid, run_id) exported by the callback plugin."""
    d = os.environ.get(ENV_STATE)
    owner = os.environ.get(ENV_OWNER)
    run = os.environ.get(ENV_RUN)
    if not d or not owner or not run or not os.path.isdir(d):
        raise SessionError(
            "the imgbake.disk.sessions callback is not enabled, so nothing would stop (and commit) the "
            "image sessions at the end of the play: add `callbacks_enabled = imgbake.disk.sessions` to the "
            "[defaults] section of ansible.cfg (or set ANSIBLE_CALLBACKS_ENABLED=imgbake.disk.sessions); ad-hoc "
            "commands (`ansible DISK -m ...`) load no callbacks unless ANSIBLE_LOAD_CALLBACK_PLUGINS=1 is set too "
            "(bin_ansible_callbacks = True in ansible.cfg)")
    return d, int(owner), run


def make_state_dir():
    base = os.environ.get("XDG_RUNTIME_DIR")
    if not base or not os.path.isdir(base):
        base = None
    d = tempfile.mkdtemp(prefix="ansible-imgbake-", dir=base)  # 0700
    os.mkdir(os.path.join(d, "sessions"), 0o700)
    return d


def session_name(run_id, remote, disk):
    key = hashlib.sha256(("%s\0%s" % (remote or "", disk)).encode()).hexdigest()[:10]
    return "ansible-%s-%s" % (run_id, key)


class Target(object):
    """Where imgbake runs: here, or on a remote host over one ssh connection."""

    def __init__(self, command, remote=None, ssh_args="", state_dir=None):
        self.command = command or "imgbake"
        self.remote = remote or None
        self.ssh_args = ssh_args or ""
        self.state_dir = state_dir

    def to_dict(self):
        return {"command": self.command, "remote": self.remote, "ssh_args": self.ssh_args}

    @classmethod
    def from_dict(cls, d, state_dir):
        return cls(d.get("command"), d.get("remote"), d.get("ssh_args"), state_dir)

    def _key(self):
        return hashlib.sha256(("%s\0%s" % (self.remote, self.ssh_args)).encode()).hexdigest()[:12]

    def control_path(self):
        return os.path.join(self.state_dir, "ssh-" + self._key())

    def ssh_base(self):
        return ["ssh", "-S", self.control_path(), "-o", "ControlMaster=no", "-o", "BatchMode=yes"] + \
            shlex.split(self.ssh_args)

    def argv(self, args):
        """The command line running `imgbake ARGS...` on the target."""
        if not self.remote:
            return shlex.split(self.command) + [str(a) for a in args if a != REMOTE_OWNER]
        words = []
        for a in args:
            words.append('"$PPID"' if a == REMOTE_OWNER else shlex.quote(str(a)))
        return self.ssh_base() + [self.remote, "--", self.command + " " + " ".join(words)]

    def run(self, args, stdin=None, input_data=None, stdout=subprocess.PIPE, timeout=None):
        """Run imgbake ARGS on the target; returns (rc, stdout, stderr)."""
        if self.remote:
            self.ensure_connection()
        kw = {}
        if input_data is not None:
            kw["input"] = input_data
        else:
            kw["stdin"] = stdin if stdin is not None else subprocess.DEVNULL
        p = subprocess.run(self.argv(args), stdout=stdout, stderr=subprocess.PIPE, timeout=timeout, **kw)
        return p.returncode, p.stdout, p.stderr

    # ---- the one ssh connection

    def connection_alive(self):
        if not os.path.exists(self.control_path()):
            return False
        p = subprocess.run(["ssh", "-S", self.control_path(), "-O", "check"] + shlex.split(self.ssh_args) + [self.remote],
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return p.returncode == 0

    def ensure_connection(self):
        """Start the ssh master connection unless it is up. It is watched by
        a small detached process that ends it when ansible-playbook exits."""
        ctl = self.control_path()
        with open(ctl + ".lock", "a") as lk:
            fcntl.flock(lk, fcntl.LOCK_EX)
            if self.connection_alive():
                return
            try:
                os.unlink(ctl)
            except OSError:
                pass
            _, owner, _ = state()
            log = ctl + ".log"
            master = ["ssh", "-M", "-N", "-S", ctl, "-o", "ControlPersist=no", "-o", "BatchMode=yes",
                      "-o", "ServerAliveInterval=15", "-o", "ExitOnForwardFailure=yes"] + shlex.split(self.ssh_args) + [self.remote]
            with open(log, "ab") as lf:
                w = subprocess.Popen([sys.executable, "-c", WATCHER, str(owner)] + master,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=lf,
                                     start_new_session=True, close_fds=True)
            deadline = time.time() + 60
            while time.time() < deadline:
                if self.connection_alive():
                    return
                if w.poll() is not None:
                    break
                time.sleep(0.1)
            if w.poll() is None:
                w.terminate()
                w.wait()
            try:
                with open(log, "rb") as lf:
                    tail = lf.read().decode(errors="replace").strip().splitlines()[-5:]
            except OSError:
                tail = []
            raise SessionError("ssh connection to %s failed: %s" % (self.remote, " | ".join(tail) or "no output"))

    def close_connection(self):
        if self.remote and os.path.exists(self.control_path()):
            subprocess.run(["ssh", "-S", self.control_path(), "-O", "exit"] + shlex.split(self.ssh_args) + [self.remote],
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# Runs detached (own session): starts the ssh master given as argv[2:] and
# ends it when the owner (ansible-playbook, argv[1]) exits or on SIGTERM.
WATCHER = r"""
import os, signal, subprocess, sys, time
def ident(pid):
    try:
        s = open('/proc/%d/stat' % pid).read()
    except OSError:
        return None
    r = s[s.rindex(')') + 2:].split()
    return None if len(r) < 20 or r[0] in ('Z', 'X') else r[19]
owner = int(sys.argv[1])
start = ident(owner)
p = subprocess.Popen(sys.argv[2:], stdin=subprocess.DEVNULL)
signal.signal(signal.SIGTERM, lambda *a: p.terminate())
signal.signal(signal.SIGHUP, signal.SIG_IGN)
while p.poll() is None:
    if start is None or ident(owner) != start:
        p.terminate()
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
        break
    time.sleep(0.5)
p.wait()
"""


# ---- the record of the play's sessions, shared by the workers and the callback

def _locked(state_dir):
    f = open(os.path.join(state_dir, "lock"), "a")
    fcntl.flock(f, fcntl.LOCK_EX)
    return f


def record_session(state_dir, name, target, disk, host, on_failure):
    """Note that host used session name (created on its first task)."""
    p = os.path.join(state_dir, "sessions", name + ".json")
    with _locked(state_dir):
        try:
            with open(p) as f:
                rec = json.load(f)
        except (OSError, ValueError):
            rec = {"name": name, "disk": disk, "target": target.to_dict(), "hosts": [], "on_failure": on_failure}
        if host and host not in rec["hosts"]:
            rec["hosts"].append(host)
        rec["on_failure"] = on_failure
        tmp = p + ".tmp"
        with open(tmp, "w") as f:
            json.dump(rec, f)
        os.rename(tmp, p)


def _update(state_dir, name, fn):
    p = os.path.join(state_dir, "sessions", name + ".json")
    with _locked(state_dir):
        try:
            with open(p) as f:
                rec = json.load(f)
        except (OSError, ValueError):
            return None
        out = fn(rec)
        tmp = p + ".tmp"
        with open(tmp, "w") as f:
            json.dump(rec, f)
        os.rename(tmp, p)
        return out


def session_started(state_dir, name):
    """Whether an earlier task of the play started session name."""
    return bool(_update(state_dir, name, lambda rec: rec.get("started")))


def mark_started(state_dir, name):
    _update(state_dir, name, lambda rec: rec.__setitem__("started", True))


def recorded_sessions(state_dir):
    out = []
    d = os.path.join(state_dir, "sessions")
    with _locked(state_dir):
        for n in sorted(os.listdir(d)):
            if n.endswith(".json"):
                try:
                    with open(os.path.join(d, n)) as f:
                        out.append(json.load(f))
                except (OSError, ValueError):
                    pass
    return out


def forget_session(state_dir, name):
    try:
        os.unlink(os.path.join(state_dir, "sessions", name + ".json"))
    except OSError:
        pass


# ---- the session's control socket (package session/api of imgbake)
#
# One request per connection. Frames: 4-byte big-endian payload length,
# 4-byte stream (always 1), 1-byte type. The client sends a TCall holding
# the JSON request, then (request "stdin": true) its input as TData ended by
# TEOF; the daemon answers TStdout/TStderr/TData and ends with a TResult.

import socket  # noqa: E402
import struct  # noqa: E402
import threading  # noqa: E402

T_CALL, T_DATA, T_EOF, T_STDOUT, T_STDERR, T_RESULT, T_CANCEL = 1, 2, 3, 4, 5, 6, 7
_HDR = struct.Struct(">IIB")
_CHUNK = 256 << 10


class ControlError(SessionError):
    """The session (its socket, its daemon) failed, not the request."""


def _connect_unix(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(None)
    if len(path.encode()) < 100:
        s.connect(path)
        return s
    # sun_path is short: go through an O_PATH descriptor of the directory,
    # as imgbake's own client does.
    fd = os.open(os.path.dirname(path), getattr(os, "O_PATH", 0) | os.O_DIRECTORY)
    try:
        s.connect("/proc/self/fd/%d/%s" % (fd, os.path.basename(path)))
    finally:
        os.close(fd)
    return s


def _send(sock, kind, payload=b""):
    sock.sendall(_HDR.pack(len(payload), 1, kind) + payload)


def _recv_exact(f, n):
    b = f.read(n)
    if len(b) != n:
        raise ControlError("the session closed the connection mid-answer")
    return b


class Control(object):
    """Requests to one session over its control socket."""

    def __init__(self, path):
        self.path = path

    def call(self, req, data=None, on_stdout=None, on_stderr=None):
        """Send one request. data (bytes or a binary file) is its input;
        on_stdout gets TStdout and TData payloads, on_stderr TStderr ones.
        Returns the result (a dict); raises ControlError when the session
        cannot be reached or goes away."""
        req = dict(req)
        if data is not None:
            req["stdin"] = True
        try:
            sock = _connect_unix(self.path)
        except OSError as e:
            raise ControlError("connecting to the session socket %s: %s" % (self.path, e))
        sender = None
        try:
            _send(sock, T_CALL, json.dumps(req).encode())
            if data is not None:
                # In a thread: a command that does not read its input while
                # it writes a lot must not deadlock with us.
                sender = threading.Thread(target=self._send_data, args=(sock, data))
                sender.daemon = True
                sender.start()
            f = sock.makefile("rb", buffering=1 << 20)
            while True:
                hdr = f.read(_HDR.size)
                if len(hdr) != _HDR.size:
                    raise ControlError("the session went away before answering (see its log)")
                n, _, kind = _HDR.unpack(hdr)
                payload = _recv_exact(f, n) if n else b""
                if kind in (T_STDOUT, T_DATA):
                    if on_stdout is not None:
                        on_stdout(payload)
                elif kind == T_STDERR:
                    if on_stderr is not None:
                        on_stderr(payload)
                elif kind == T_RESULT:
                    return json.loads(payload.decode("utf-8"))
        except (OSError, ValueError) as e:
            raise ControlError("session socket %s: %s" % (self.path, e))
        finally:
            try:
                sock.close()
            except OSError:
                pass

    @staticmethod
    def _send_data(sock, data):
        try:
            if isinstance(data, (bytes, bytearray)):
                for i in range(0, len(data), _CHUNK):
                    _send(sock, T_DATA, bytes(data[i:i + _CHUNK]))
            else:
                while True:
                    b = data.read(_CHUNK)
                    if not b:
                        break
                    _send(sock, T_DATA, b)
            _send(sock, T_EOF)
        except (OSError, ValueError):
            pass  # the reader sees the session's answer (or its absence)


def forward_socket(target, local, remote):
    """Make local (a path in the private state directory) lead to the remote
    session socket through the play's ssh connection."""
    target.ensure_connection()
    try:
        os.unlink(local)
    except OSError:
        pass
    p = subprocess.run(["ssh", "-S", target.control_path(), "-O", "forward", "-o", "StreamLocalBindUnlink=yes",
                        "-L", "%s:%s" % (local, remote)] + shlex.split(target.ssh_args) + [target.remote],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if p.returncode != 0:
        raise SessionError("forwarding the session socket over ssh failed: %s" % p.stderr.decode(errors="replace").strip())


def session_socket(state_dir, name):
    """The control socket recorded for session name, or None."""
    return _update(state_dir, name, lambda rec: rec.get("socket"))


def record_socket(state_dir, name, path):
    _update(state_dir, name, lambda rec: rec.__setitem__("socket", path))


def mark_no_module_host(state_dir, name, python):
    _update(state_dir, name, lambda rec: rec.setdefault("no_module_host", {}).__setitem__(python, True))


def module_host_unavailable(state_dir, name, python):
    return bool(_update(state_dir, name, lambda rec: rec.get("no_module_host", {}).get(python)))


def record_module_host(state_dir, name, python, pid, magic, compiled):
    """Record python as the interpreter whose module host (pid, bytecode
    magic, or "refused" once it turned compiled code down) served session
    name last (the one housekeeping commands go to), and the compiled files
    ("FILE:CRC") it now has."""
    def put(rec):
        rec["module_host"] = python
        code = rec.setdefault("module_host_code", {}).setdefault(python, {})
        if code.get("pid") != pid:
            code["pid"], code["sent"], code["magic"] = pid, [], None
        if code.get("magic") != "refused":  # that host keeps refusing
            code["magic"] = magic
        code["sent"] = sorted(set(code["sent"]) | set(compiled))
    _update(state_dir, name, put)


def module_host_code(state_dir, name, python):
    """What record_module_host recorded of python's module host: {"pid",
    "magic", "sent"}, or {} before its first answer."""
    return _update(state_dir, name, lambda rec: dict(rec.get("module_host_code", {}).get(python, {}))) or {}


def module_host_python(state_dir, name):
    """The interpreter recorded by record_module_host, or None."""
    return _update(state_dir, name, lambda rec: None if rec.get("no_module_host", {}).get(rec.get("module_host"))
                   else rec.get("module_host"))

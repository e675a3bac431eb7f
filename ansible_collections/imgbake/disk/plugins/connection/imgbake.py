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

import os
import secrets

from ansible.errors import AnsibleConnectionFailure, AnsibleError, AnsibleFileNotFound
from ansible.module_utils.common.text.converters import to_bytes, to_native
from ansible.plugins.connection import ConnectionBase
from ansible.utils.display import Display

from ansible_collections.imgbake.disk.plugins.plugin_utils import session as S

display = Display()


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
        args = ["session", "start"] + mode + ["--name", self._name, "-a", disk,
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
        if not started:
            S.mark_started(state_dir, self._name)
        self._connected = True
        return self

    def exec_command(self, cmd, in_data=None, sudoable=True):
        super(Connection, self).exec_command(cmd, in_data=in_data, sudoable=sudoable)
        display.vvv("EXEC %s" % cmd, host=self._play_context.remote_addr)
        # cmd is what Ansible would hand to a login shell: run it with the image's /bin/sh.
        args = ["session", "exec", self._name, "--", "/bin/sh", "-c", to_native(cmd)]
        if in_data is None:
            args[2:2] = ["-n"]
        try:
            rc, out, err = self._target.run(args, input_data=in_data)
        except (S.SessionError, OSError) as e:
            raise AnsibleConnectionFailure("imgbake: %s" % to_native(e))
        if rc == S.SESSION_FAILED and self._session_failed(err):
            raise AnsibleConnectionFailure("imgbake: session %s failed: %s" % (self._name, to_native(err).strip()))
        return rc, out, err

    def _session_failed(self, err):
        """Whether exit 255 came from imgbake or ssh rather than the command."""
        e = err.lstrip()
        if e.startswith(b"imgbake: session"):
            return True
        if self._target.remote:
            return not e or e.startswith(b"ssh:") or b"mux_client" in e or b"Control socket" in e
        return False

    def put_file(self, in_path, out_path):
        super(Connection, self).put_file(in_path, out_path)
        display.vvv("PUT %s TO %s" % (in_path, out_path), host=self._play_context.remote_addr)
        if not os.path.exists(to_bytes(in_path, errors="surrogate_or_strict")):
            raise AnsibleFileNotFound("file or module does not exist: %s" % in_path)
        try:
            if self._target.remote:
                with open(to_bytes(in_path, errors="surrogate_or_strict"), "rb") as f:
                    rc, out, err = self._target.run(["session", "put", "--exact", self._name, "-", out_path], stdin=f)
            else:
                rc, out, err = self._target.run(["session", "put", "--exact", self._name, in_path, out_path])
        except (S.SessionError, OSError) as e:
            raise AnsibleConnectionFailure("imgbake: %s" % to_native(e))
        if rc != 0:
            raise AnsibleError("imgbake: failed to transfer %s to %s: %s" % (in_path, out_path, to_native(err).strip()))

    def fetch_file(self, in_path, out_path):
        super(Connection, self).fetch_file(in_path, out_path)
        display.vvv("FETCH %s TO %s" % (in_path, out_path), host=self._play_context.remote_addr)
        try:
            if self._target.remote:
                tmp = out_path + ".imgbake-part"
                with open(to_bytes(tmp, errors="surrogate_or_strict"), "wb") as f:
                    rc, out, err = self._target.run(["session", "fetch", "--exact", self._name, in_path, "-"], stdout=f)
                if rc == 0:
                    os.rename(tmp, out_path)
                else:
                    os.unlink(tmp)
            else:
                rc, out, err = self._target.run(["session", "fetch", "--exact", self._name, in_path, out_path])
        except (S.SessionError, OSError) as e:
            raise AnsibleConnectionFailure("imgbake: %s" % to_native(e))
        if rc != 0:
            raise AnsibleError("imgbake: failed to fetch %s to %s: %s" % (in_path, out_path, to_native(err).strip()))

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

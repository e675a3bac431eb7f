# The imgbake module host: a warm Python inside the image that runs Ansible
# module payloads (AnsiballZ, pipelined) in forked children, so a task costs
# a fork instead of a new interpreter and its imports (Mitogen's model).
#
# The connection plugin has the session start it once per session and
# interpreter, chrooted into the image as root, as
#   /bin/sh -c '/bin/sh -c '\''exec "$0" -c "$1"'\'' "$0" "$1"' PYTHON SOURCE
# (two shells, as a pipelined module runs, so its environment is the same).
# This file is the SOURCE: it runs as __main__ of `PYTHON -c`; it is not
# imported on the controller. Keep it compatible with Python 3.5.
#
# Framing on its stdin/stdout (the session daemon's side, session/api):
# 1 byte type + 4 bytes big-endian length + payload.
#   host -> daemon  'H' hello (JSON), once, when warm; 'A' an answer
#   daemon -> host  'Q' a request; 'C' cancel the request being served
# EOF on stdin ends the host (its children are killed).
#
# A request is 4 bytes big-endian N + N bytes of JSON (reserved, {} today)
# + the script Python would read from stdin. An answer is 4 bytes N + JSON
# {"rc", "out", "err", "pid", "warm"} + out bytes of stdout + err bytes of
# stderr: what `PYTHON` reading the script from stdin would have exited
# with and written, from the same environment and cwd.
#
# Limits (the README has them): a child shares the host's hash seed and
# whatever the pre-imported modules computed when imported; a process a
# module leaves behind is killed when the task ends if it stayed in the
# task's process group or session (setsid'd double-forked daemons escape
# until the session stops).

import os
import sys

STDLIB = (
    "abc argparse ast atexit base64 binascii bisect codecs collections contextlib copy datetime "
    "enum errno fcntl fnmatch functools gettext grp hashlib inspect io itertools json keyword "
    "linecache locale logging math operator platform posixpath pwd random re runpy select "
    "selectors shlex shutil signal stat string struct subprocess syslog tempfile textwrap "
    "threading time tokenize traceback types typing warnings weakref zipfile zipimport zlib"
).split()

# Import before the first request, each only if the image has it.
_t0 = __import__("time").time()
for _name in STDLIB:
    try:
        __import__(_name)
    except Exception:
        pass
_stdlib_time = __import__("time").time() - _t0

import importlib.util  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import selectors  # noqa: E402
import signal  # noqa: E402
import struct  # noqa: E402
import tempfile  # noqa: E402
import types  # noqa: E402
import zipfile  # noqa: E402
import zipimport  # noqa: E402

# The protocol's descriptors move off 0 and 1, which point at /dev/null in
# the host, so nothing a pre-imported module prints can corrupt the stream.
PROTO_IN = os.dup(0)
PROTO_OUT = os.dup(1)
_null = os.open(os.devnull, os.O_RDWR)
os.dup2(_null, 0)
os.dup2(_null, 1)
os.close(_null)
for _fd in (PROTO_IN, PROTO_OUT):
    os.set_inheritable(_fd, False)

START_PATH = list(sys.path)
START_META = list(sys.meta_path)
START_CWD = os.getcwd()
ZIPDATA_RE = re.compile(br'\n    ZIPDATA = """([A-Za-z0-9+/=\s]*)"""\n')


def log(msg):
    try:
        os.write(2, ("imgbake module host: %s\n" % msg).encode("utf-8", "replace"))
    except OSError:
        pass


# ---- framing

class Closed(Exception):
    pass


def read_exact(fd, n):
    buf = bytearray()
    while len(buf) < n:
        b = os.read(fd, min(n - len(buf), 1 << 20))
        if not b:
            raise Closed()
        buf += b
    return bytes(buf)


def read_frame(fd):
    hdr = read_exact(fd, 5)
    n = struct.unpack(">I", hdr[1:])[0]
    return hdr[:1], read_exact(fd, n)


def write_frame(fd, kind, payload):
    data = kind + struct.pack(">I", len(payload)) + payload
    while data:
        n = os.write(fd, data)
        data = data[n:]


def split_blob(b):
    n = struct.unpack(">I", b[:4])[0]
    return json.loads(b[4:4 + n].decode("utf-8")), b[4 + n:]


def join_blob(header, *parts):
    h = json.dumps(header, sort_keys=True).encode("utf-8")
    return b"".join((struct.pack(">I", len(h)), h) + parts)


# ---- warm ansible.module_utils, from the first payload's own zip

class Warm(object):
    def __init__(self):
        self.tried = False
        self.dir = None
        self.zip = None
        self.names = []  # modules imported from the zip, in sys.modules
        self.crcs = {}  # their files in the zip -> CRC

    def payload_zip(self, script):
        m = ZIPDATA_RE.search(script)
        if not m:
            return None
        import base64
        try:
            return base64.b64decode(m.group(1))
        except Exception:
            return None

    def load(self, script):
        """Import ansible.module_utils.basic from script's zip into the host."""
        self.tried = True
        data = self.payload_zip(script)
        if data is None:
            log("no zip in the first payload: modules import cold")
            return
        import warnings
        self.dir = tempfile.mkdtemp(prefix="imgbake-modhost-")
        self.zip = os.path.join(self.dir, "module_utils.zip")
        with open(self.zip, "wb") as f:
            f.write(data)
        before = set(sys.modules)
        # Anything the import would print (to fd 2) or warn about is what a
        # cold run prints too: then the children must import cold.
        saved = os.dup(2)
        errf = tempfile.TemporaryFile()
        os.dup2(errf.fileno(), 2)
        ok = False
        try:
            # Recorded under the filters a cold run has: what it would show.
            with warnings.catch_warnings(record=True) as caught:
                sys.path.insert(0, self.zip)
                try:
                    importlib.import_module("ansible.module_utils.basic")
                    ok = True
                except BaseException as e:
                    log("warm import failed: %r" % (e,))
                finally:
                    sys.path[:] = START_PATH
            sys.stderr.flush()
            errf.seek(0)
            if caught or errf.read(1):
                if ok:
                    log("the warm import printed or warned: modules import cold")
                ok = False
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            errf.close()
        added = [n for n in sys.modules if n not in before]
        if not ok:
            for n in added:
                if n == "ansible" or n.startswith("ansible."):
                    del sys.modules[n]
            sys.meta_path[:] = START_META
            return
        self.names = [n for n in added if n == "ansible" or n.startswith("ansible.")]
        log("warm: %d ansible modules imported from the first payload" % len(self.names))
        with zipfile.ZipFile(self.zip) as z:
            info = {i.filename: i.CRC for i in z.infolist()}
        for n in self.names:
            f = getattr(sys.modules[n], "__file__", None) or ""
            if not f.startswith(self.zip + os.sep):
                continue  # an alias another module set (compat.selectors is selectors)
            rel = f[len(self.zip) + 1:]
            if rel not in info:
                log("warm module %s is not in the payload's zip (%s): modules import cold" % (n, f))
                self.forget()
                self.names, self.crcs = [], {}
                return
            self.crcs[rel] = info[rel]

    def usable_for(self, script):
        """Whether the payload's zip holds the warm modules byte for byte."""
        if not self.names:
            return False
        data = self.payload_zip(script)
        if data is None:
            return False
        import io
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as z:
                info = {i.filename: i.CRC for i in z.infolist()}
        except Exception:
            return False
        return all(info.get(rel) == crc for rel, crc in self.crcs.items())

    def forget(self):
        for n in self.names:
            sys.modules.pop(n, None)

    def cleanup(self):
        if self.dir:
            import shutil
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None


class PayloadFinder(object):
    """Finds ansible.* modules that are not warm in the payload's own zip
    (the first .zip on sys.path other than the warm one): the warm
    packages' __path__ names the first payload's zip, which lacks them."""

    def __init__(self, warm_zip):
        self.warm_zip = warm_zip
        self.importers = {}

    def find_spec(self, name, path=None, target=None):
        if name != "ansible" and not name.startswith("ansible."):
            return None
        for entry in sys.path:
            if not entry.endswith(".zip") or entry == self.warm_zip or not os.path.isfile(entry):
                continue
            # A zipimporter finds the last part of a name in its prefix.
            parent = name.rpartition(".")[0]
            where = os.path.join(entry, *parent.split(".")) if parent else entry
            zi = self.importers.get(where)
            if zi is None:
                try:
                    zi = self.importers[where] = zipimport.zipimporter(where)
                except zipimport.ZipImportError:
                    continue
            if hasattr(zi, "find_spec"):
                spec = zi.find_spec(name)
            else:
                spec = None
                if zi.find_module(name) is not None:
                    spec = importlib.util.spec_from_loader(name, zi, is_package=zi.is_package(name))
            if spec is not None:
                return spec
        return None


# ---- one task, in a forked child

def exit_code_of(e):
    """What Python's exit makes of an uncaught SystemExit."""
    code = e.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    try:
        sys.stderr.write(str(code) + "\n")
    except Exception:
        pass
    return 1


def run_child(script, warm, stdin_r, out_w, err_w, drop):
    """In the forked child: become what `PYTHON < script` would be, run
    the script, exit as the interpreter would. Never returns."""
    rc = 1
    try:
        os.setsid()
        for fd in drop:
            try:
                os.close(fd)
            except OSError:
                pass
        os.dup2(stdin_r, 0)
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        for fd in (stdin_r, out_w, err_w):
            os.close(fd)
        os.chdir(START_CWD)
        sys.path[:] = START_PATH
        sys.argv[:] = [""]
        if warm.names and warm.usable_for(script):
            sys.meta_path.insert(0, PayloadFinder(warm.zip))
        else:
            warm.forget()
        main = types.ModuleType("__main__")
        main.__dict__.update({"__file__": "<stdin>", "__cached__": None, "__loader__": START_MAIN_LOADER,
                              "__spec__": None, "__package__": None, "__annotations__": {},
                              "__builtins__": sys.modules["builtins"]})
        sys.modules["__main__"] = main
        try:
            try:
                code = compile(script, "<stdin>", "exec", dont_inherit=True)
            except SyntaxError as e:
                e.__traceback__ = None  # Python shows no frame for the script's own syntax
                raise
            exec(code, main.__dict__)
            rc = 0
        except SystemExit as e:
            rc = exit_code_of(e)
        except BaseException:
            t, v, tb = sys.exc_info()
            # Drop this frame: the traceback starts at the script, as Python's does.
            if tb is not None:
                tb = tb.tb_next
                v.__traceback__ = tb  # what Python 3.11's excepthook prints
            sys.excepthook(t, v, tb)
            if isinstance(v, KeyboardInterrupt):
                rc = -signal.SIGINT
            else:
                rc = 1
        # The interpreter's own ending: threads, atexit, flushing.
        try:
            if "threading" in sys.modules:
                sys.modules["threading"]._shutdown()
        except BaseException:
            pass
        try:
            import atexit
            atexit._run_exitfuncs()
        except BaseException:
            pass
        for f in (sys.stdout, sys.stderr):
            try:
                if f is not None:
                    f.flush()
            except BaseException:
                rc = 120
    except BaseException:
        try:
            import traceback
            os.write(2, ("imgbake module host: " + traceback.format_exc()).encode("utf-8", "replace"))
        except BaseException:
            pass
        rc = 1
    if rc == -signal.SIGINT:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    os._exit(rc & 0xFF)


START_MAIN_LOADER = getattr(sys.modules["__main__"], "__loader__", None)


def kill_leftovers(pid):
    """Kill what the task left: its process group and its session, and
    wait (a moment) for the group to be gone."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        return
    try:
        ents = os.listdir("/proc")
    except OSError:
        return
    for e in ents:
        if not e.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % e, "rb") as f:
                st = f.read()
            fields = st[st.rindex(b")") + 2:].split()
            if int(fields[3]) == pid:  # session id
                os.kill(int(e), signal.SIGKILL)
        except (OSError, ValueError, IndexError):
            pass
    import time
    deadline = time.time() + 2
    while time.time() < deadline:
        try:
            os.killpg(pid, 0)
        except OSError:
            return
        time.sleep(0.01)


def shell_signal_message(sig):
    """What the image's shell prints when the interpreter it ran is killed
    by sig (dash: "Terminated"): asked of the shell itself, so it is the
    same words; the plain path runs python under that shell."""
    import subprocess
    try:
        p = subprocess.run(["/bin/sh", "-c", "/bin/sh -c 'kill -%d $$' && sleep 0" % sig],
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=10)
        return p.stderr
    except Exception:
        return b""


class Canceled(Exception):
    pass


def serve_one(script, warm, sel_in):
    """Run script in a child; returns (rc, out, err). A 'C' frame on the
    protocol kills the child (and raises Canceled after reaping it)."""
    stdin_r, stdin_w = os.pipe()
    os.close(stdin_w)  # Python read the script from stdin: it is at EOF
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        run_child(script, warm, stdin_r, out_w, err_w, (PROTO_IN, PROTO_OUT, out_r, err_r))
    for fd in (stdin_r, out_w, err_w):
        os.close(fd)
    bufs = {out_r: bytearray(), err_r: bytearray()}
    sel = selectors.DefaultSelector()
    sel.register(out_r, selectors.EVENT_READ)
    sel.register(err_r, selectors.EVENT_READ)
    sel.register(PROTO_IN, selectors.EVENT_READ)
    status = None
    canceled = False
    closed = False
    pidfd = None
    if hasattr(os, "pidfd_open"):
        try:
            pidfd = os.pidfd_open(pid)
            sel.register(pidfd, selectors.EVENT_READ)
        except OSError:
            pidfd = None
    try:
        while status is None:
            for key, _ in sel.select(None if pidfd is not None else 0.01):
                fd = key.fd
                if fd in bufs:
                    b = os.read(fd, 1 << 16)
                    if b:
                        bufs[fd] += b
                    else:
                        sel.unregister(fd)
                elif fd == PROTO_IN:
                    try:
                        kind, _ = read_frame(PROTO_IN)
                    except Closed:
                        kind = b"C"
                        closed = True
                        sel.unregister(PROTO_IN)
                    if kind == b"C" and not canceled:
                        canceled = True
                        try:
                            os.killpg(pid, signal.SIGKILL)
                        except OSError:
                            pass
            wp, ws = os.waitpid(pid, os.WNOHANG)
            if wp == pid:
                status = ws
        kill_leftovers(pid)
        # Whatever is still in the pipes; a process that escaped the kill
        # and holds them open gets no more than this.
        for fd in list(bufs):
            try:
                sel.unregister(fd)
            except (KeyError, ValueError):
                continue
            os.set_blocking(fd, False)
            try:
                while True:
                    b = os.read(fd, 1 << 16)
                    if not b:
                        break
                    bufs[fd] += b
            except BlockingIOError:
                pass
    finally:
        sel.close()
        if pidfd is not None:
            os.close(pidfd)
        for fd in bufs:
            os.close(fd)
    if closed:
        raise Closed()
    if canceled:
        raise Canceled()
    err = bytes(bufs[err_r])
    if os.WIFSIGNALED(status):
        rc = 128 + os.WTERMSIG(status)  # as the shell around python reports it
        err += shell_signal_message(os.WTERMSIG(status))
    else:
        rc = os.WEXITSTATUS(status)
    return rc, bytes(bufs[out_r]), err


def main():
    warm = Warm()
    write_frame(PROTO_OUT, b"H", json.dumps({
        "pid": os.getpid(), "python": sys.version.split()[0], "stdlib_import_s": round(_stdlib_time, 3),
        "modules": len(sys.modules)}).encode())
    try:
        while True:
            try:
                kind, payload = read_frame(PROTO_IN)
            except Closed:
                return
            if kind != b"Q":
                continue  # a cancel that arrived after its answer
            _, script = split_blob(payload)
            was_warm = bool(warm.names)
            try:
                rc, out, err = serve_one(script, warm, None)
            except Canceled:
                write_frame(PROTO_OUT, b"A", join_blob({"canceled": True, "pid": os.getpid()}))
                continue
            write_frame(PROTO_OUT, b"A", join_blob({"rc": rc, "out": len(out), "err": len(err),
                                                   "pid": os.getpid(), "warm": was_warm}, out, err))
            if not warm.tried:
                warm.load(script)
    except Closed:
        return
    finally:
        warm.cleanup()


main()

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
# A request is 4 bytes big-endian N + N bytes of JSON ({} for a module)
# + the script Python would read from stdin. An answer is 4 bytes N + JSON
# {"rc", "out", "err", "pid", "warm", "seconds"} + out bytes of stdout + err
# bytes of stderr: what `PYTHON` reading the script from stdin would have
# exited with and written, from the same environment and cwd.
#
# A module request's JSON may be {"compiled": {"magic", "optimize", "size"}}:
# then the first size bytes after it are a marshal blob {"files": {file in
# the zip: (CRC, code)}, "main": code} of the payload's modules and of the
# script itself (compiled as "<stdin>"), compiled by the controller's
# Python; used only when its bytecode magic and optimization level are the
# host's (what makes a .pyc valid), a module's code only for the very file
# by name and CRC. The answer says "compiled_used" and the host's "magic".
#
# A request whose JSON is {"shell": CMD} (and no script) asks the host to
# do CMD, one of the housekeeping commands Ansible's action plugins send
# around a module (echo ~user, the task's mkdtemp, chmod u+x, rm -f -r; see
# housekeeping below), with Python's calls instead of a /bin/sh and its
# children: the answer is what the shell would have given when all went
# well, or {"fallback": true} (a command of another shape, or anything not
# as expected) and the caller runs CMD with the shell, which then gives the
# real outcome, errors included.
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
import time  # noqa: E402
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
ZIPDATA_START = b'\n    ZIPDATA = """'


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
        self.payloads = {}  # sha1 of a payload's ZIPDATA -> PayloadInfo
        self.compiled = {}  # (file in the zip, CRC) -> code, see PayloadInfo

    @staticmethod
    def zipdata(script):
        """The base64 text of the AnsiballZ wrapper's ZIPDATA literal, or
        None."""
        start = script.find(ZIPDATA_START)
        if start < 0:
            return None
        start += len(ZIPDATA_START)
        end = script.find(b'"""', start)
        return script[start:end] if end >= 0 else None

    def payload_zip(self, script):
        text = self.zipdata(script)
        if text is None:
            return None
        import binascii
        try:
            return binascii.a2b_base64(text)
        except (binascii.Error, ValueError):
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
                finder = None
                if self.compiled:
                    with zipfile.ZipFile(self.zip) as z:
                        finder = WarmFinder(self.zip, {i.filename: i.CRC for i in z.infolist()}, self.compiled)
                    sys.meta_path.insert(0, finder)
                try:
                    importlib.import_module("ansible.module_utils.basic")
                    ok = True
                except BaseException as e:
                    log("warm import failed: %r" % (e,))
                finally:
                    sys.path[:] = START_PATH
                    if finder in sys.meta_path:
                        sys.meta_path.remove(finder)
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

    def payload_info(self, script):
        """What the host knows of script's zip, kept across tasks (a play
        sends the same module's zip again and again): whether it holds the
        warm modules byte for byte, and its modules compiled. None when the
        host is not warm or script has no zip."""
        if not self.names:
            return None
        text = self.zipdata(script)
        if text is None:
            return None
        import hashlib
        key = hashlib.sha1(text).digest()
        info = self.payloads.get(key)
        if info is None:
            info = PayloadInfo(self, self.payload_zip(script))
            if len(self.payloads) >= 64:
                self.payloads.clear()
            self.payloads[key] = info
        return info

    def forget(self):
        for n in self.names:
            sys.modules.pop(n, None)

    def cleanup(self):
        if self.dir:
            import shutil
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None


# Compiled modules are kept only where a code object's file name can be set
# to the child's own payload path (Python 3.8+) and zipimport compiles the
# way we can ask it to.
_COMPILE_SOURCE = getattr(zipimport, "_compile_source", None)
CODE_CACHE = _COMPILE_SOURCE is not None and hasattr(types.CodeType, "replace")
_CACHED_NAME = "<imgbake-module-host>"
MAGIC = importlib.util.MAGIC_NUMBER.hex()


class PayloadInfo(object):
    """A payload zip as the host saw it: usable (it holds the warm modules
    byte for byte) and compiled (file in the zip -> code object of the
    task's module or another module that is not warm, compiled as
    zipimport would, under a placeholder name).
    zipimport compiles a module from source on every import, twice for a
    spec; a child given the code skips both."""

    def __init__(self, warm, data):
        self.usable = False
        self.compiled = {}
        self.files = frozenset()
        if data is None:
            return
        import io
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as z:
                infos = z.infolist()
                crcs = {i.filename: i.CRC for i in infos}
                self.files = frozenset(crcs)
                self.usable = all(crcs.get(rel) == crc for rel, crc in warm.crcs.items())
                if self.usable and CODE_CACHE:
                    for i in infos:
                        # The task's module and the module_utils the warm ones
                        # lack (their packages are left to zipimport).
                        if i.filename.startswith("ansible/") and i.filename.endswith(".py") \
                                and not i.filename.endswith("/__init__.py") and i.filename not in warm.crcs:
                            code = self._compile(warm, z, i)
                            if code is not None:
                                self.compiled[i.filename] = code
        except Exception:
            self.usable = False

    @staticmethod
    def _compile(warm, z, info):
        key = (info.filename, info.CRC)
        if key in warm.compiled:
            return warm.compiled[key]
        import warnings
        code = None
        # A source that warns when compiled is left to the child: a cold
        # run would print the warning.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                code = _COMPILE_SOURCE(_CACHED_NAME, z.read(info))
            except Exception:
                code = None
        if caught:
            code = None
        warm.compiled[key] = code
        return code


def refile(code, filename):
    """code and the code objects in it, with filename as their file."""
    consts = tuple(refile(c, filename) if isinstance(c, types.CodeType) else c for c in code.co_consts)
    return code.replace(co_filename=filename, co_consts=consts)


class CompiledLoader(object):
    """zi's loader for name, with name's code compiled ahead (by the host,
    or by the controller's Python of the same bytecode version)."""

    def __init__(self, zi, name, filename, code, package=False):
        self.zi, self.name, self.filename, self.code, self.package = zi, name, filename, code, package

    def get_filename(self, fullname):
        return self.filename if fullname == self.name else self.zi.get_filename(fullname)

    def get_code(self, fullname):
        if fullname != self.name:
            return self.zi.get_code(fullname)
        return refile(self.code, self.filename)

    def is_package(self, fullname):
        return self.package if fullname == self.name else self.zi.is_package(fullname)

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        exec(self.get_code(module.__name__), module.__dict__)

    def __getattr__(self, attr):  # get_source, get_data, get_resource_reader, ...
        return getattr(self.zi, attr)


class WarmFinder(object):
    """During the warm import: ansible.* from the warm zip, with the code
    compiled ahead where there is some for the very file (name and CRC),
    in zipimport's search order; anything else is zipimport's."""

    def __init__(self, zip_path, crcs, compiled):
        self.zip, self.crcs, self.compiled = zip_path, crcs, compiled
        self.importers = {}

    def find_spec(self, name, path=None, target=None):
        if name != "ansible" and not name.startswith("ansible."):
            return None
        p = name.replace(".", "/")
        if p + "/__init__.pyc" in self.crcs:
            return None
        for rel, package in ((p + "/__init__.py", True), (p + ".pyc", None), (p + ".py", False)):
            if rel in self.crcs:
                break
        else:
            return None
        code = self.compiled.get((rel, self.crcs[rel])) if package is not None else None
        if code is None:
            return None
        where = os.path.join(self.zip, *p.split("/")[:-1])
        zi = self.importers.get(where)
        if zi is None:
            try:
                zi = self.importers[where] = zipimport.zipimporter(where)
            except zipimport.ZipImportError:
                return None
        loader = CompiledLoader(zi, name, self.zip + os.sep + rel, code, package)
        return importlib.util.spec_from_loader(name, loader, is_package=package)


def load_compiled(blob):
    """What the controller compiled, from the marshal blob of a request:
    {(file, CRC): code} of the payload's modules and the code of the
    script itself (or None)."""
    import marshal
    try:
        bundle = marshal.loads(blob)
    except Exception as e:
        log("ignoring the controller's compiled modules: %r" % (e,))
        return {}, None
    if not isinstance(bundle, dict):
        return {}, None
    out = {}
    files = bundle.get("files")
    if isinstance(files, dict):
        for rel, v in files.items():
            if isinstance(rel, str) and isinstance(v, tuple) and len(v) == 2 and isinstance(v[1], types.CodeType):
                out[(rel, v[0])] = v[1]
    main = bundle.get("main")
    return out, main if isinstance(main, types.CodeType) else None


class PayloadFinder(object):
    """Finds ansible.* modules that are not warm in the payload's own zip
    (the first .zip on sys.path other than the warm one): the warm
    packages' __path__ names the first payload's zip, which lacks them."""

    def __init__(self, warm_zip, info):
        self.warm_zip = warm_zip
        self.compiled = info.compiled  # of the payload's zip: the first below
        self.files = info.files
        self.importers = {}

    def find_spec(self, name, path=None, target=None):
        if name != "ansible" and not name.startswith("ansible."):
            return None
        first = True
        for entry in sys.path:
            if not entry.endswith(".zip") or entry == self.warm_zip or not os.path.isfile(entry):
                continue
            payload, first = first, False
            # A zipimporter finds the last part of a name in its prefix.
            parent = name.rpartition(".")[0]
            where = os.path.join(entry, *parent.split(".")) if parent else entry
            zi = self.importers.get(where)
            if zi is None:
                try:
                    zi = self.importers[where] = zipimport.zipimporter(where)
                except zipimport.ZipImportError:
                    continue
            if payload:
                spec = self.compiled_spec(zi, entry, name)
                if spec is not None:
                    return spec
            if hasattr(zi, "find_spec"):
                spec = zi.find_spec(name)
            else:
                spec = None
                if zi.find_module(name) is not None:
                    spec = importlib.util.spec_from_loader(name, zi, is_package=zi.is_package(name))
            if spec is not None:
                return spec
        return None

    def compiled_spec(self, zi, entry, name):
        """name's spec with the host's code, where zipimport would find
        name as a plain .py in the payload's zip; else None."""
        path = name.replace(".", "/")
        code = self.compiled.get(path + ".py")
        if code is None or self.files & {path + "/__init__.pyc", path + "/__init__.py", path + ".pyc"}:
            return None
        # As zipimporter.find_spec makes it, with the compiled code's loader.
        loader = CompiledLoader(zi, name, entry + os.sep + path + ".py", code)
        return importlib.util.spec_from_loader(name, loader, is_package=False)


# ---- Ansible's housekeeping commands, without a shell

# The commands exactly as ansible.plugins.shell (sh) builds them and
# ActionBase._low_level_execute_command wraps them, for paths made of
# characters that neither the shell nor echo changes.
_SAFE_PATH = r"/[A-Za-z0-9_.+@%,:/-]*"
_SHELL_WRAP = re.compile(r"^/bin/sh -c '(.*) && sleep 0'$", re.S)
_ECHO_HOME = re.compile(r"^echo ~([_.A-Za-z0-9][-_.A-Za-z0-9]*)?$")
_MKDTEMP = re.compile(r'^\( umask 77 && mkdir -p "` echo (%s) `"&& mkdir "` echo (%s) `" && echo ([A-Za-z0-9_.-]+)="` echo (%s) `" \)$'
                      % (_SAFE_PATH, _SAFE_PATH, _SAFE_PATH))
_CHMOD_UX = re.compile(r"^chmod u\+x((?: %s)+)$" % _SAFE_PATH)
_RM_RF = re.compile(r"^rm -f -r (%s) > /dev/null 2>&1$" % _SAFE_PATH)


def _echoed(text):
    """What the image's echo prints for one argument, or None where an
    echo could print something else (dash's echo reads backslashes)."""
    if "\\" in text or text.startswith("-") or "\n" in text:
        return None
    return (text + "\n").encode("utf-8", "surrogateescape")


def _plain(path):
    """Whether path names something below / without . or .. in it (rm
    refuses those and /, Python would not)."""
    parts = [c for c in path.split("/") if c]
    return bool(parts) and not any(c in (".", "..") for c in parts)


def _echo_home(user):
    if user is None:
        home = os.environ.get("HOME")
    else:
        import pwd
        try:
            home = pwd.getpwnam(user).pw_dir
        except KeyError:
            home = "~" + user  # the shell leaves an unknown user's ~ as it is
    if not home:
        return None
    return _echoed(home)


def _mkdtemp(base, tmp, name, again):
    if tmp != again or tmp != base.rstrip("/") + "/" + name or not _plain(tmp):
        return None
    old = os.umask(0o077)
    try:
        os.makedirs(base, 0o700, exist_ok=True)
        os.mkdir(tmp, 0o700)
    finally:
        os.umask(old)
    return _echoed("%s=%s" % (name, tmp))


def _chmod_ux(paths):
    import stat as st
    if not all(_plain(p) for p in paths):
        return None
    for p in paths:
        mode = os.stat(p).st_mode  # chmod follows a symlink operand
        os.chmod(p, st.S_IMODE(mode) | st.S_IXUSR)
    return b""


def _rm_rf(path):
    import shutil
    import stat as st
    if not _plain(path):
        return None
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return b""
    if st.S_ISLNK(mode) or path.endswith("/") and not st.S_ISDIR(mode):
        return None  # rm's own rules for symlinks and slashes
    if st.S_ISDIR(mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)
    return b""


def housekeeping(cmd):
    """Do cmd, one of Ansible's housekeeping commands: its stdout (rc 0,
    nothing on stderr), or None for the shell to run it."""
    m = _SHELL_WRAP.match(cmd)
    if not m:
        return None
    inner = m.group(1)
    try:
        m = _ECHO_HOME.match(inner)
        if m:
            return _echo_home(m.group(1))
        m = _MKDTEMP.match(inner)
        if m:
            return _mkdtemp(*m.groups())
        m = _CHMOD_UX.match(inner)
        if m:
            return _chmod_ux(m.group(1).split())
        m = _RM_RF.match(inner)
        if m:
            return _rm_rf(m.group(1))
    except (OSError, ValueError):
        pass  # the shell runs it again and says what went wrong
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


def run_child(script, script_code, warm, info, stdin_r, out_w, err_w, drop):
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
        if info is not None and info.usable:
            sys.meta_path.insert(0, PayloadFinder(warm.zip, info))
        else:
            warm.forget()
        main = types.ModuleType("__main__")
        main.__dict__.update({"__file__": "<stdin>", "__cached__": None, "__loader__": START_MAIN_LOADER,
                              "__spec__": None, "__package__": None, "__annotations__": {},
                              "__builtins__": sys.modules["builtins"]})
        sys.modules["__main__"] = main
        try:
            try:
                code = script_code or compile(script, "<stdin>", "exec", dont_inherit=True)
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


def serve_one(script, script_code, warm):
    """Run script in a child; returns (rc, out, err). A 'C' frame on the
    protocol kills the child (and raises Canceled after reaping it)."""
    stdin_r, stdin_w = os.pipe()
    os.close(stdin_w)  # Python read the script from stdin: it is at EOF
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    info = warm.payload_info(script)
    pid = os.fork()
    if pid == 0:
        run_child(script, script_code, warm, info, stdin_r, out_w, err_w, (PROTO_IN, PROTO_OUT, out_r, err_r))
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
            header, script = split_blob(payload)
            started = time.time()
            used, script_code = None, None
            bundle = header.get("compiled")
            if bundle:
                size = int(bundle.get("size", 0))
                blob, script = script[:size], script[size:]
                # Turned down (and then never sent again to this host) where
                # the bytecode differs or this Python cannot refile code.
                used = CODE_CACHE and bundle.get("magic") == MAGIC and bundle.get("optimize") == sys.flags.optimize
                if used:
                    files, script_code = load_compiled(blob)
                    warm.compiled.update(files)
            if "shell" in header:
                out = housekeeping(header["shell"])
                if out is None:
                    write_frame(PROTO_OUT, b"A", join_blob({"fallback": True, "pid": os.getpid()}))
                else:
                    write_frame(PROTO_OUT, b"A", join_blob({"rc": 0, "out": len(out), "err": 0, "pid": os.getpid(),
                                                           "seconds": round(time.time() - started, 3)}, out))
                continue
            # The first payload brings ansible.module_utils: imported here
            # before its own child forks, that child already runs warm.
            if not warm.tried:
                warm.load(script)
            was_warm = bool(warm.names)
            try:
                rc, out, err = serve_one(script, script_code, warm)
            except Canceled:
                write_frame(PROTO_OUT, b"A", join_blob({"canceled": True, "pid": os.getpid()}))
                continue
            answer = {"rc": rc, "out": len(out), "err": len(err), "pid": os.getpid(), "warm": was_warm,
                      "magic": MAGIC, "seconds": round(time.time() - started, 3)}
            if used is not None:
                answer["compiled_used"] = bool(used)
            write_frame(PROTO_OUT, b"A", join_blob(answer, out, err))
    except Closed:
        return
    finally:
        warm.cleanup()


main()

package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The module host (plugin_utils/modhost.py) run on this machine with its
// python3, without a VM: every payload must give the rc, stdout and stderr
// byte for byte that `python3` reading it from stdin gives, the way a
// pipelined module runs (/bin/sh -c '/usr/bin/python3 && sleep 0').

const hostPython = "/usr/bin/python3"

type modHost struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
}

func startModHost(t *testing.T) *modHost {
	t.Helper()
	if _, err := os.Stat(hostPython); err != nil {
		t.Skipf("no %s: %v", hostPython, err)
	}
	src, err := os.ReadFile(filepath.Join(repoRoot(t), "ansible_collections", "imgbake", "disk", "plugins", "plugin_utils", "modhost.py"))
	must(t, err)
	// As the connection plugin has the session start it.
	cmd := exec.Command("/bin/sh", "-c", `/bin/sh -c 'exec "$0" -c "$1"' "$0" "$1"`, hostPython, string(src))
	cmd.Dir = "/"
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	must(t, err)
	out, err := cmd.StdoutPipe()
	must(t, err)
	must(t, cmd.Start())
	h := &modHost{cmd: cmd, in: in, out: bufio.NewReader(out)}
	t.Cleanup(func() { in.Close(); _ = cmd.Wait() })
	if kind, b := h.read(t); kind != 'H' || !strings.Contains(string(b), `"pid"`) {
		t.Fatalf("hello: %c %s", kind, b)
	}
	return h
}

func (h *modHost) read(t *testing.T) (byte, []byte) {
	t.Helper()
	var hdr [5]byte
	if _, err := io.ReadFull(h.out, hdr[:]); err != nil {
		t.Fatalf("reading from the module host: %v", err)
	}
	b := make([]byte, binary.BigEndian.Uint32(hdr[1:]))
	if _, err := io.ReadFull(h.out, b); err != nil {
		t.Fatal(err)
	}
	return hdr[0], b
}

func (h *modHost) send(t *testing.T, kind byte, b []byte) {
	t.Helper()
	buf := append([]byte{kind, 0, 0, 0, 0}, b...)
	binary.BigEndian.PutUint32(buf[1:], uint32(len(b)))
	if _, err := h.in.Write(buf); err != nil {
		t.Fatal(err)
	}
}

type modResult struct {
	RC       int
	Out, Err string
	PID      int
	Canceled bool
}

func (h *modHost) run(t *testing.T, script []byte) modResult {
	t.Helper()
	body := append([]byte{0, 0, 0, 2, '{', '}'}, script...)
	h.send(t, 'Q', body)
	return h.answer(t)
}

func (h *modHost) answer(t *testing.T) modResult {
	t.Helper()
	r, _ := h.answerWith(t)
	return r
}

// answerHeader is what an answer says besides rc, stdout and stderr.
type answerHeader struct {
	Fallback     bool // a housekeeping command left to the shell
	CompiledUsed bool `json:"compiled_used"`
}

func (h *modHost) answerWith(t *testing.T) (modResult, answerHeader) {
	t.Helper()
	kind, a := h.read(t)
	if kind != 'A' {
		t.Fatalf("frame %c, want an answer", kind)
	}
	n := binary.BigEndian.Uint32(a)
	var hd struct {
		RC, Out, Err, PID int
		Canceled          bool
		answerHeader
	}
	must(t, json.Unmarshal(a[4:4+n], &hd))
	rest := a[4+n:]
	if hd.Canceled || hd.Fallback {
		return modResult{Canceled: hd.Canceled, PID: hd.PID}, hd.answerHeader
	}
	return modResult{RC: hd.RC, Out: string(rest[:hd.Out]), Err: string(rest[hd.Out : hd.Out+hd.Err]), PID: hd.PID}, hd.answerHeader
}

// plainRun is the plain path: a fresh python3 reading the script.
func plainRun(t *testing.T, script []byte) modResult {
	t.Helper()
	return plainShell(t, "/bin/sh -c '"+hostPython+" && sleep 0'", script)
}

// plainShell runs cmd as the plugin's plain path does, /bin/sh -c cmd in
// /, with stdin (nil: none).
func plainShell(t *testing.T, cmd string, stdin []byte) modResult {
	t.Helper()
	c := exec.Command("/bin/sh", "-c", cmd)
	c.Dir = "/"
	if stdin != nil {
		c.Stdin = bytes.NewReader(stdin)
	}
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	err := c.Run()
	rc := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		rc = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return modResult{RC: rc, Out: out.String(), Err: errb.String()}
}

// ansiballz builds a real AnsiballZ payload of module with args.
func ansiballz(t *testing.T, module, args string) []byte {
	t.Helper()
	vmtestLookPathOrSkip(t, "ansible-playbook")
	out, err := exec.Command(hostPython, filepath.Join(repoRoot(t), "cmd", "imgbake", "testdata", "modhost", "payload.py"), module, args).Output()
	if err != nil {
		t.Fatalf("building the %s payload: %v", module, err)
	}
	return out
}

func vmtestLookPathOrSkip(t *testing.T, name string) {
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("%s not installed", name)
	}
}

var payloadDir = regexp.MustCompile(`ansible_[a-z_]+_payload_[A-Za-z0-9_]+`)

func TestModHostSameAsPlainPython(t *testing.T) {
	h := startModHost(t)
	marker := "#!/usr/bin/python3\n_ANSIBALLZ_WRAPPER = True\n"
	cases := map[string]string{
		"exit 0":              "print('hello')\n",
		"sys.exit(3)":         "import sys\nprint('out')\nsys.stderr.write('err\\n')\nsys.exit(3)\n",
		"sys.exit(str)":       "import sys\nsys.exit('a message')\n",
		"an exception":        "def f():\n    raise ValueError('boom')\nf()\n",
		"os._exit":            "import os\nprint('lost in the buffer')\nos._exit(7)\n",
		"a subprocess":        "import subprocess\nsubprocess.run(['sh', '-c', 'echo sub; echo suberr >&2; exit 4'])\nprint('after')\n",
		"binary output":       "import os\nos.write(1, b'\\xff\\x00\\xfe')\nos.write(2, b'\\x00')\n",
		"ctrl-c":              "raise KeyboardInterrupt\n",
		"atexit and a thread": "import atexit, threading, time\natexit.register(lambda: print('atexit'))\nthreading.Thread(target=lambda: (time.sleep(0.2), print('thread'))).start()\n",
		"stdin is at EOF":     "import sys\nprint(repr(sys.stdin.read()), sys.argv, __name__, __file__)\n",
		"a syntax error":      "def (:\n",
		"a signal":            "import os, signal\nos.kill(os.getpid(), signal.SIGTERM)\n",
		"environment":         "import os\nprint(sorted(os.environ.items()), os.getcwd())\n",
	}
	for name, body := range cases {
		script := []byte(marker + body)
		want := plainRun(t, script)
		for i := 0; i < 2; i++ { // twice: the second from a host that served one already
			got := h.run(t, script)
			got.PID = 0
			if got != want {
				t.Errorf("%s: the module host gave\n%+v\nplain python3 gave\n%+v", name, got, want)
			}
		}
	}
	// Real module payloads, cold then warm (ansible.module_utils imported
	// in the host from the first payload's zip).
	for _, m := range []struct{ module, args string }{
		{"ping", `{"data": "pong"}`},
		{"file", `{"path": "/etc/hostname", "state": "file"}`},
		{"ping", `{"data": "crash"}`},
		{"stat", `{"path": "/nonexistent-imgbake"}`},
	} {
		script := ansiballz(t, m.module, m.args)
		want := plainRun(t, script)
		want.Err = payloadDir.ReplaceAllString(want.Err, "PAYLOAD")
		for i := 0; i < 2; i++ {
			got := h.run(t, script)
			got.PID = 0
			got.Err = payloadDir.ReplaceAllString(got.Err, "PAYLOAD")
			if got != want {
				t.Errorf("%s %s: the module host gave\n%+v\nplain python3 gave\n%+v", m.module, m.args, got, want)
			}
		}
	}
}

// A task that hangs is killed with what it started when the request is
// cancelled; one that leaves a background process behind gets it killed
// when it ends; a crash kills only the child: the host serves on.
func TestModHostCancelLeftoversCrash(t *testing.T) {
	h := startModHost(t)
	marker := "#!/usr/bin/python3\n_ANSIBALLZ_WRAPPER = True\n"
	tag := fmt.Sprintf("%d.%d", os.Getpid(), time.Now().UnixNano()%100000)
	first := h.run(t, []byte(marker+"print('up')\n"))

	h.send(t, 'Q', append([]byte{0, 0, 0, 2, '{', '}'}, []byte(marker+"import subprocess\nsubprocess.run(['sleep', '1"+tag+"'])\n")...))
	time.Sleep(1500 * time.Millisecond)
	if len(procsWithArg(t, "1"+tag)) == 0 {
		t.Fatal("the hanging task's sleep is not running")
	}
	h.send(t, 'C', nil)
	if r := h.answer(t); !r.Canceled {
		t.Errorf("a cancelled task answered %+v", r)
	}
	if p := procsWithArg(t, "1"+tag); len(p) != 0 {
		t.Errorf("the cancelled task left %v running", p)
	}

	r := h.run(t, []byte(marker+"import subprocess\nsubprocess.Popen(['sleep', '2"+tag+"'])\nprint('left a daemon')\n"))
	if r.RC != 0 || r.Out != "left a daemon\n" {
		t.Errorf("the task leaving a daemon: %+v", r)
	}
	if p := procsWithArg(t, "2"+tag); len(p) != 0 {
		t.Errorf("the task's background process %v is still running", p)
	}

	r = h.run(t, []byte(marker+"import ctypes\nctypes.string_at(0)\n"))
	if r.RC != 128+11 {
		t.Errorf("a segfaulting task: %+v", r)
	}
	if r := h.run(t, []byte(marker+"print('still here')\n")); r.Out != "still here\n" || r.PID != first.PID {
		t.Errorf("after the crash: %+v (host pid %d before)", r, first.PID)
	}
}

func procsWithArg(t *testing.T, arg string) []string {
	t.Helper()
	var out []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(b, []byte("\x00"+arg+"\x00")) {
			out = append(out, e.Name())
		}
	}
	return out
}

// shell asks the host to do one of Ansible's housekeeping commands; ok is
// false when it leaves the command to the shell.
func (h *modHost) shell(t *testing.T, cmd string) (r modResult, ok bool) {
	t.Helper()
	hdr, err := json.Marshal(map[string]string{"shell": cmd})
	must(t, err)
	body := binary.BigEndian.AppendUint32(nil, uint32(len(hdr)))
	h.send(t, 'Q', append(body, hdr...))
	r, hd := h.answerWith(t)
	r.PID = 0
	return r, !hd.Fallback
}

// modeTree is every entry below dir: its mode and, for files, content.
func modeTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		d := fi.Mode().String()
		if fi.Mode().IsRegular() {
			b, _ := os.ReadFile(p)
			d += " " + string(b)
		}
		out[rel] = d
		return nil
	})
	must(t, err)
	return out
}

// TestModHostHousekeeping: the commands Ansible's action plugins send
// around a module (~ expansion, the task's mkdtemp, chmod u+x, rm -f -r),
// done by the host with Python's calls, print what the shell prints and
// leave the same files with the same modes; a command of another shape, or
// one that would fail or that rm refuses, is left to the shell (which then
// reports the real error).
func TestModHostHousekeeping(t *testing.T) {
	h := startModHost(t)
	tmpName := "ansible-tmp-1796603530.5164285-16483-128488"
	mkdtemp := func(base string) string {
		return fmt.Sprintf("/bin/sh -c '( umask 77 && mkdir -p \"` echo %s `\"&& mkdir \"` echo %s/%s `\" && echo %s=\"` echo %s/%s `\" ) && sleep 0'",
			base, base, tmpName, tmpName, base, tmpName)
	}
	setup := func(d string) {
		must(t, os.MkdirAll(filepath.Join(d, "tree", "sub", "deeper"), 0o755))
		must(t, os.WriteFile(filepath.Join(d, "tree", "sub", "deeper", "f"), []byte("x"), 0o600))
		must(t, os.WriteFile(filepath.Join(d, "file"), []byte("data"), 0o640))
		must(t, os.Mkdir(filepath.Join(d, "exists"), 0o755))
		must(t, os.Mkdir(filepath.Join(d, "exists", tmpName), 0o700))
		must(t, os.Symlink("tree", filepath.Join(d, "link")))
	}
	for _, c := range []struct {
		name, cmd string
		native    bool // done by the host, not left to the shell
	}{
		{"echo ~root", "/bin/sh -c 'echo ~root && sleep 0'", true},
		{"echo ~ of no user", "/bin/sh -c 'echo ~nosuchuser-imgbake && sleep 0'", true},
		{"echo ~", "/bin/sh -c 'echo ~ && sleep 0'", true},
		{"mkdtemp, new parents", mkdtemp("{D}/new/.ansible/tmp"), true},
		{"mkdtemp, parent there", mkdtemp("{D}/tree"), true},
		{"mkdtemp, trailing slash", mkdtemp("{D}/tree/"), false}, // not the shape: echo DIR/ /NAME
		{"mkdtemp, the directory exists", mkdtemp("{D}/exists"), false},
		{"mkdtemp, the parent is a file", mkdtemp("{D}/file"), false},
		{"chmod u+x", "/bin/sh -c 'chmod u+x {D}/tree/ {D}/file && sleep 0'", true},
		{"chmod u+x through a symlink", "/bin/sh -c 'chmod u+x {D}/link && sleep 0'", true},
		{"chmod u+x, missing", "/bin/sh -c 'chmod u+x {D}/missing && sleep 0'", false},
		{"rm a tree", "/bin/sh -c 'rm -f -r {D}/tree/ > /dev/null 2>&1 && sleep 0'", true},
		{"rm a file", "/bin/sh -c 'rm -f -r {D}/file > /dev/null 2>&1 && sleep 0'", true},
		{"rm, missing", "/bin/sh -c 'rm -f -r {D}/missing/ > /dev/null 2>&1 && sleep 0'", true},
		{"rm a symlink", "/bin/sh -c 'rm -f -r {D}/link > /dev/null 2>&1 && sleep 0'", false},
		{"rm ..", "/bin/sh -c 'rm -f -r {D}/tree/.. > /dev/null 2>&1 && sleep 0'", false},
		{"another command", "/bin/sh -c 'echo ~root; id && sleep 0'", false},
		{"a quoted path", "/bin/sh -c 'rm -f -r '\"'\"'{D}/a b'\"'\"' > /dev/null 2>&1 && sleep 0'", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			viaShell, viaHost := t.TempDir(), t.TempDir()
			setup(viaShell)
			setup(viaHost)
			want := plainShell(t, strings.ReplaceAll(c.cmd, "{D}", viaShell), nil)
			want.Out = strings.ReplaceAll(want.Out, viaShell, "{D}")
			got, native := h.shell(t, strings.ReplaceAll(c.cmd, "{D}", viaHost))
			if native != c.native {
				t.Fatalf("done by the host: %v, want %v (the shell gave %+v)", native, c.native, want)
			}
			if !native {
				return
			}
			got.Out = strings.ReplaceAll(got.Out, viaHost, "{D}")
			if got != want {
				t.Errorf("the host gave %+v, the shell %+v", got, want)
			}
			if a, b := modeTree(t, viaShell), modeTree(t, viaHost); !reflect.DeepEqual(a, b) {
				t.Errorf("files after the shell:\n%v\nafter the host:\n%v", a, b)
			}
		})
	}
	// Never /: rm refuses it, and so does the host (the shell is not asked here).
	if _, native := h.shell(t, "/bin/sh -c 'rm -f -r / > /dev/null 2>&1 && sleep 0'"); native {
		t.Error("the host did rm -f -r /")
	}
}

// withBundle is the request the connection plugin sends for payload, with
// the controller-compiled modules of its zip (testdata/modhost/bundle.py).
func withBundle(t *testing.T, payload []byte, mode string) []byte {
	t.Helper()
	cmd := exec.Command(hostPython, filepath.Join(repoRoot(t), "cmd", "imgbake", "testdata", "modhost", "bundle.py"), repoRoot(t), mode)
	cmd.Stdin = bytes.NewReader(payload)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("bundle.py %s: %v", mode, err)
	}
	return out
}

// TestModHostCompiledBundle: the script and its modules compiled by the
// controller's Python (same bytecode magic) give the same results as plain
// python3, cold and warm, tracebacks included; they are what runs (a
// bundle with other code for the module's file and CRC, or for the script,
// changes the output); a bundle tagged with another magic is ignored.
func TestModHostCompiledBundle(t *testing.T) {
	h := startModHost(t)
	ask := func(body []byte) (modResult, bool) {
		t.Helper()
		h.send(t, 'Q', body)
		r, hd := h.answerWith(t)
		r.PID = 0
		r.Err = payloadDir.ReplaceAllString(r.Err, "PAYLOAD")
		return r, hd.CompiledUsed
	}
	for _, m := range []struct{ module, args, mode string }{
		{"ping", `{"data": "pong"}`, "ok"}, // the first: warms the host with the bundle's code
		{"file", `{"path": "/etc/hostname", "state": "file"}`, "ok"},
		{"ping", `{"data": "crash"}`, "ok"},
		{"stat", `{"path": "/nonexistent-imgbake"}`, "badmagic"},
	} {
		script := ansiballz(t, m.module, m.args)
		want := plainRun(t, script)
		want.Err = payloadDir.ReplaceAllString(want.Err, "PAYLOAD")
		got, used := ask(withBundle(t, script, m.mode))
		if used != (m.mode == "ok") {
			t.Errorf("%s %s (%s): compiled_used %v", m.module, m.args, m.mode, used)
		}
		if got != want {
			t.Errorf("%s %s (%s): the module host gave\n%+v\nplain python3 gave\n%+v", m.module, m.args, m.mode, got, want)
		}
	}
	got, _ := ask(withBundle(t, ansiballz(t, "ping", `{"data": "x"}`), "tamper"))
	if !strings.HasPrefix(got.Out, "from the bundle\n") {
		t.Errorf("a bundle's code for ping.py was not run: %+v", got)
	}
	if got, _ := ask(withBundle(t, ansiballz(t, "ping", `{"data": "x"}`), "tamper-main")); got.Out != "main from the bundle\n" {
		t.Errorf("a bundle's code for the script was not run: %+v", got)
	}
}

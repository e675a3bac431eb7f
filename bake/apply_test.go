package bake

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/fsops/fsopstest"
	"github.com/imgbake/imgbake/recipes"
)

// fakeImage is an Image whose operations go to a fake session over a
// temporary root: the step loop and run-once rules without a VM.
func fakeImage(t *testing.T, o Options, h fsopstest.Handler) (*Image, string) {
	t.Helper()
	root := t.TempDir()
	for p, c := range map[string]string{
		"etc/os-release": "ID=debian\nVERSION_ID=12\nPRETTY_NAME=\"Debian 12\"\n",
		"etc/hostname":   "old\n",
		"etc/hosts":      "127.0.0.1\tlocalhost\n",
		"root/.keep":     "",
	} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, p), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return &Image{ops: fsopstest.New(t, root, h), opts: o, logf: func(string, ...any) {}, notices: io.Discard}, root
}

func parse(t *testing.T, src string) *recipes.Recipe {
	t.Helper()
	rec, err := recipes.Parse("r.yaml", []byte(src), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// recorder keeps the step results it is told about.
type recorder struct {
	nopEvents
	results []Outcome
	already bool
}

func (r *recorder) StepResult(_ recipes.Step, o Outcome)            { r.results = append(r.results, o) }
func (r *recorder) AlreadyApplied(*recipes.Recipe, *fsops.RunState) { r.already = true }

func (r *recorder) statuses() string {
	var s []string
	for _, o := range r.results {
		s = append(s, o.Status)
	}
	return strings.Join(s, ",")
}

const fourSteps = `name: four
steps:
  - hostname: baked
  - write: {path: /root/a, content: "a\n"}
    when: os.family == "rhel"
  - run: test -e /root/never || true
    creates: /etc/hostname
  - run: exit 3
    ignore_errors: true
`

func TestApplyRules(t *testing.T) {
	failing := func(c fsopstest.Call) fsopstest.Reply {
		if strings.Contains(c.Line(), "exit 3") {
			return fsopstest.Reply{RC: 3, Stderr: "boom\n"}
		}
		return fsopstest.Reply{}
	}
	img, root := fakeImage(t, Options{}, failing)
	ev := &recorder{}
	got, err := img.Apply(context.Background(), parse(t, fourSteps), ApplyOptions{Events: ev})
	if err != nil {
		t.Fatal(err)
	}
	if s := ev.statuses(); s != "changed,skipped,skipped,failed (ignored)" {
		t.Errorf("statuses %s", s)
	}
	if got.Summary != (Summary{Changed: 1, Skipped: 2, Ignored: 1}) || got.Facts.Family != "debian" {
		t.Errorf("summary %+v, facts %+v", got.Summary, got.Facts)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc/hostname")); string(b) != "baked\n" {
		t.Errorf("hostname %q", b)
	}
	if _, err := os.Stat(filepath.Join(root, "root/a")); err == nil {
		t.Error("a step whose when was false ran")
	}
	// Recorded as complete: the same recipe is already applied, --force runs it.
	ev = &recorder{}
	if got, err := img.Apply(context.Background(), parse(t, fourSteps), ApplyOptions{Events: ev}); err != nil || !got.AlreadyApplied || !ev.already {
		t.Errorf("second apply: %+v, %v", got, err)
	}
	ev = &recorder{}
	if got, err := img.Apply(context.Background(), parse(t, fourSteps), ApplyOptions{Events: ev, Force: true}); err != nil || got.Summary.OK != 1 {
		t.Errorf("forced apply: %+v, %v (%s)", got.Summary, err, ev.statuses())
	}
}

func TestApplyFailureAndResume(t *testing.T) {
	fail := true
	h := func(c fsopstest.Call) fsopstest.Reply {
		if fail && strings.Contains(c.Line(), "false") {
			return fsopstest.Reply{RC: 1, Stderr: "no\n"}
		}
		return fsopstest.Reply{}
	}
	img, _ := fakeImage(t, Options{InPlace: true}, h)
	src := "name: resume\nsteps:\n  - hostname: one\n  - run: false\n    changed_when: rc == 0\n  - hostname: three\n"
	ev := &recorder{}
	_, err := img.Apply(context.Background(), parse(t, src), ApplyOptions{Events: ev})
	var se *StepError
	if !errors.Is(err, ErrStepFailed) || !errors.As(err, &se) || se.Step.Index != 2 || ExitCode(err) != ExitStepFailed {
		t.Fatalf("err %v (exit %d)", err, ExitCode(err))
	}
	if s := ev.statuses(); s != "changed,failed" {
		t.Errorf("statuses %s", s)
	}
	// In place, progress was recorded after step 1: the next run resumes at 2.
	fail = false
	ev = &recorder{}
	if _, err := img.Apply(context.Background(), parse(t, src), ApplyOptions{Events: ev}); err != nil {
		t.Fatal(err)
	}
	if s := ev.statuses(); s != "changed,changed" {
		t.Errorf("resumed statuses %s, want the last two steps only", s)
	}
	// A different recipe on top of an interrupted one is refused.
	fail = true
	if _, err := img.Apply(context.Background(), parse(t, "name: other\nsteps:\n  - run: false\n"), ApplyOptions{}); !errors.Is(err, ErrStepFailed) {
		t.Fatalf("err %v", err)
	}
	_, err = img.Apply(context.Background(), parse(t, src), ApplyOptions{})
	if !errors.Is(err, ErrImage) || !strings.Contains(err.Error(), `recipe "other" stopped after step 0`) {
		t.Errorf("different recipe: %v", err)
	}
}

func TestExitCodes(t *testing.T) {
	base := errors.New("x")
	for _, tc := range []struct {
		err  error
		want int
	}{
		{nil, ExitOK},
		{base, ExitImage},
		{Classify(ErrUsage, base), ExitUsage},
		{Classify(ErrStepFailed, base), ExitStepFailed},
		{WithCode(7, Classify(ErrUsage, base)), 7},
		{Classify(ErrImage, WithCode(ExitStepFailed, base)), ExitImage},
		{context.Canceled, ExitInterrupted},
		{recipes.ErrInvalid, ExitUsage},
	} {
		if got := ExitCode(tc.err); got != tc.want {
			t.Errorf("ExitCode(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}

func TestCheckOptions(t *testing.T) {
	out := filepath.Join(t.TempDir(), "exists.qcow2")
	if err := os.WriteFile(out, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		disks []string
		o     Options
		want  string
	}{
		{nil, Options{}, "no disk image given"},
		{[]string{"a"}, Options{Format: "vmdk"}, `--format "vmdk"`},
		{[]string{"a"}, Options{InPlace: true, Output: "b"}, "exclude each other"},
		{[]string{"a", "b"}, Options{Output: "c"}, "exactly one -a"},
		{[]string{"a"}, Options{Output: out}, "already exists"},
	} {
		err := Check(tc.disks, tc.o)
		if !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Check(%v, %+v) = %v, want usage error with %q", tc.disks, tc.o, err, tc.want)
		}
	}
	if err := Check([]string{"a"}, Options{Format: "qcow2"}); err != nil {
		t.Error(err)
	}
	for spec, want := range map[string]Mount{"/dev/vda2": {Device: "/dev/vda2"}, "vg0/root:/": {Device: "vg0/root", Mountpoint: "/"}} {
		if got, err := ParseMount(spec); err != nil || got != want {
			t.Errorf("ParseMount(%q) = %+v, %v", spec, got, err)
		}
	}
	for _, bad := range []string{":/", "/dev/vda1:boot"} {
		if _, err := ParseMount(bad); !errors.Is(err, ErrUsage) {
			t.Errorf("ParseMount(%q) = %v", bad, err)
		}
	}
}

func TestCommandLineVars(t *testing.T) {
	f := filepath.Join(t.TempDir(), "vars.yaml")
	if err := os.WriteFile(f, []byte("a: file\nb: file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	v, err := CommandLineVars(f, []string{"b=cli", "c=x=y"})
	if err != nil || v["a"] != "file" || v["b"] != "cli" || v["c"] != "x=y" {
		t.Errorf("%v, %v", v, err)
	}
	if _, err := CommandLineVars("", []string{"novalue"}); !errors.Is(err, ErrUsage) {
		t.Errorf("bad assignment: %v", err)
	}
}

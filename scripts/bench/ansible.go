package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// Workload 8 (issue 9): the Ansible play of the tests
// (cmd/imgbake/testdata/ansible/site.yml, at least 12 tasks inside the
// image) through the imgbake.disk connection plugin, with its default one
// session for the whole play (with the module host: one warm python3 in
// the image runs every module in a forked child), the same without the
// module host (a new python3 per module), and ansible_imgbake_per_task,
// where every task boots its own appliance and commits at its end (the
// per-task-boot model of a guestfs connection). All run on fresh copies of
// the python3 test image, rotating which goes first.

// playVariants are workload 8's variants, for -plays.
var playVariants = []string{variantPlay, variantPlayNoHost, variantPerTask, variantSSH, variantChroot}

const (
	variantPlay       = "play-session"            // one session, the module host on (the default)
	variantPlayNoHost = "play-session-no-modhost" // one session, every module a new python3
	variantPerTask    = "play-per-task"           // a boot per task
)

// ansibleSetup finds what workload 8 needs: ansible-playbook, the
// repository's collection and playbook, the python3 test image.
func (b *bench) ansibleSetup() error {
	if _, err := exec.LookPath("ansible-playbook"); err != nil {
		return errors.New("workload 8: ansible-playbook not found (bash scripts/install-deps.sh installs ansible-core)")
	}
	root, err := filepath.Abs(b.cfg.repo)
	if err != nil {
		return err
	}
	b.playDir = filepath.Join(root, "cmd", "imgbake", "testdata", "ansible")
	for _, p := range []string{filepath.Join(root, "ansible_collections", "imgbake", "disk"), filepath.Join(b.playDir, "site.yml")} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("workload 8: %w (-repo must be the imgbake checkout)", err)
		}
	}
	// The caller's collections come after ours, so a collection installed
	// by hand (community.general for the chroot variant) is found too.
	b.collections = root
	if extra := os.Getenv("ANSIBLE_COLLECTIONS_PATH"); extra != "" {
		b.collections += string(os.PathListSeparator) + extra
	}
	if _, err := os.Stat(b.cfg.PythonImage); err != nil {
		return fmt.Errorf("workload 8: python test image: %w (build it: bash testimages/build.sh debian-python.raw)", err)
	}
	return nil
}

// playArgv runs site.yml against disk; extra are more -e settings.
func (b *bench) playArgv(disk string, extra ...string) []string {
	out := filepath.Join(filepath.Dir(disk), "fetched-"+filepath.Base(disk))
	argv := []string{"ansible-playbook", "site.yml", "-e", "disk=" + disk, "-e", "out_dir=" + out}
	for _, e := range extra {
		argv = append(argv, "-e", e)
	}
	return argv
}

// ansible measures every variant of the play once: the three through
// imgbake, then over ssh to the booted image and through the chroot
// connection.
func (b *bench) ansible(rep int) {
	variants := []struct {
		name string
		play func(r *run) error
	}{
		{variantPlay, b.playImgbake(nil)},
		{variantPlayNoHost, b.playImgbake([]string{"imgbake_module_host=false"})},
		{variantPerTask, b.playImgbake([]string{"imgbake_per_task=true"})},
		{variantSSH, b.playOverSSH},
		{variantChroot, b.playInChroot},
	}
	// Each repetition starts with another variant, so none always runs on
	// a cold page cache.
	for i := 0; i < rep%len(variants); i++ {
		variants = append(variants[1:], variants[0])
	}
	for _, v := range variants {
		if b.ctx.Err() != nil {
			return
		}
		if len(b.cfg.PlayOnly) > 0 && !slices.Contains(b.cfg.PlayOnly, v.name) {
			continue
		}
		r := &run{Workload: 8, Tool: toolIB, Variant: v.name, Rep: rep}
		b.record("", r, v.play(r))
	}
}

// playImgbake runs the play through the imgbake.disk connection on a fresh
// copy of the python3 image; extra are more -e settings.
func (b *bench) playImgbake(extra []string) func(r *run) error {
	return func(r *run) error {
		img, cleanup, err := b.copyOf(b.cfg.PythonImage)
		if err != nil {
			return err
		}
		defer cleanup()
		return b.runPlay(r, b.playArgv(img, extra...))
	}
}

func (b *bench) ansibleEnv() []string {
	return []string{
		"IMGBAKE_COMMAND=" + b.imgbake,
		"ANSIBLE_CONFIG=" + filepath.Join(b.playDir, "ansible.cfg"),
		"ANSIBLE_COLLECTIONS_PATH=" + b.collections,
		"ANSIBLE_LOCAL_TEMP=" + filepath.Join(b.cfg.work, "ansible-local"),
		"ANSIBLE_NOCOLOR=1",
		"ANSIBLE_FORCE_COLOR=0",
	}
}

// checkPlay makes sure the play ran every task and committed: a measured
// play that skipped its work would be a fake figure.
func checkPlay(r *run, out string) error {
	r.Tasks = strings.Count(out, "\nTASK [")
	switch {
	case r.Tasks < 12:
		return fmt.Errorf("the play ran %d tasks, want at least 12", r.Tasks)
	case !strings.Contains(out, "failed=0") || strings.Contains(out, "changes discarded"):
		return errors.New("the play failed or its changes were discarded")
	case (r.Variant == variantPlay || r.Variant == variantPlayNoHost) && !strings.Contains(out, "changes committed into the image"):
		return errors.New("the play's session was not committed")
	}
	return nil
}

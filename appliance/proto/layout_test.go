package proto

import (
	"slices"
	"testing"
)

func TestModuleList(t *testing.T) {
	list := []byte(ModuleListLine(ModulesBoot, "/lib/modules/6.1/kernel/a.ko") +
		ModuleListLine("xfs", "/lib/modules/6.1/kernel/xfs.ko") +
		"\n  \nmalformed\n" + // blank and malformed lines are skipped
		ModuleListLine(ModulesBoot, "/lib/modules/6.1/kernel/b.ko") +
		"  net /lib/modules/6.1/kernel/virtio_net.ko  ") // no final newline, blanks around
	for _, c := range []struct {
		group string
		want  []string
	}{
		{ModulesBoot, []string{"/lib/modules/6.1/kernel/a.ko", "/lib/modules/6.1/kernel/b.ko"}},
		{"xfs", []string{"/lib/modules/6.1/kernel/xfs.ko"}},
		{ModulesNet, []string{"/lib/modules/6.1/kernel/virtio_net.ko"}},
		{ModulesDM, nil},
	} {
		if got := ModulesOf(list, c.group); !slices.Equal(got, c.want) {
			t.Errorf("ModulesOf(%q) = %q, want %q", c.group, got, c.want)
		}
	}
}

func TestDefaultPath(t *testing.T) {
	want := []string{"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"}
	if got := DefaultPathDirs(); !slices.Equal(got, want) {
		t.Errorf("DefaultPathDirs() = %q, want %q", got, want)
	}
}

func TestFstabMissingWarning(t *testing.T) {
	// The agent passes a clean mount point, inspect the entry's as written:
	// both must give the same words.
	const want = "/etc/fstab line 3: LABEL=data for /data: no such device in the image"
	for _, mp := range []string{"/data", "/data/", "//data"} {
		if got := FstabMissingWarning(3, "LABEL=data", mp); got != want {
			t.Errorf("FstabMissingWarning(%q) = %q, want %q", mp, got, want)
		}
	}
}

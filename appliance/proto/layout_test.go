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

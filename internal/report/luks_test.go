package report

import (
	"bytes"
	"testing"

	"github.com/imgbake/imgbake/appliance/proto"
	"github.com/imgbake/imgbake/fsops"
)

func TestPrintLUKS(t *testing.T) {
	var b bytes.Buffer
	printLUKS(&b, &fsops.Inspection{LUKS: []proto.LUKSVolume{
		{Device: "/dev/vda2", UUID: "u-2", Version: 2, Mapping: "/dev/mapper/luks-u-2"},
		{Device: "/dev/mapper/vg-home", UUID: "u-1", Version: 1, Problem: "encrypted, no key given", NeedsKey: true},
	}})
	want := "luks volumes:\n" +
		"  /dev/vda2  LUKS2 u-2, opened as /dev/mapper/luks-u-2\n" +
		"  /dev/mapper/vg-home LUKS1 u-1, locked: encrypted, no key given\n"
	if b.String() != want {
		t.Errorf("printLUKS:\n%s\nwant:\n%s", b.String(), want)
	}
}

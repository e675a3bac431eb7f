package image

import "testing"

func TestOutputFormatFor(t *testing.T) {
	for _, c := range []struct {
		dest, explicit, want string
		ok                   bool
	}{
		{"a.qcow2", "", "qcow2", true},
		{"A.QCOW2", "", "qcow2", true},
		{"a.img", "", "raw", true},
		{"a.raw", "", "raw", true},
		{"a.vmdk", "", "vmdk", true},
		{"a.vhdx", "", "vhdx", true},
		{"a.vhd", "", "vpc", true},
		{"a.vdi", "", "vdi", true},
		{"a.foo", "", "", false},
		{"noext", "", "", false},
		{"a.foo", "raw", "raw", true},
		{"a.img", "vhd", "vpc", true},
		{"a.img", "iso", "", false},
	} {
		got, err := OutputFormatFor(c.dest, c.explicit)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("OutputFormatFor(%q, %q) = %q, %v; want %q ok=%v", c.dest, c.explicit, got, err, c.want, c.ok)
		}
	}
}

func TestOutputCheckAndArgs(t *testing.T) {
	for _, c := range []struct {
		out Output
		ok  bool
	}{
		{Output{Format: "qcow2"}, true},
		{Output{Format: "qcow2", Compress: "zlib"}, true},
		{Output{Format: "vmdk", Compress: "zlib"}, false},
		{Output{Format: "qcow2", Compress: "lz4"}, false},
		{Output{Format: "qcow2", Options: "cluster_size=2M,backing_file=/x"}, false},
		{Output{Format: "qcow2", Options: "data_file=/x"}, false},
		{Output{Format: "vpc", Options: "subformat=fixed,force_size=on"}, true},
		{Output{Format: ""}, false},
	} {
		if err := c.out.Check(); (err == nil) != c.ok {
			t.Errorf("%+v.Check() = %v, want ok=%v", c.out, err, c.ok)
		}
	}
	args := Output{Format: "qcow2", Options: "cluster_size=2M", Compress: "zlib"}.convertArgs("in", "out")
	want := []string{"convert", "-q", "-f", "qcow2", "-O", "qcow2", "-c", "-o", "cluster_size=2M,compression_type=zlib", "in", "out"}
	if len(args) != len(want) {
		t.Fatalf("convertArgs = %q", args)
	}
	for i := range want {
		if args[i] != want[i] {
			t.Fatalf("convertArgs = %q, want %q", args, want)
		}
	}
}

func TestSplitCR(t *testing.T) {
	data := []byte("    (0.00/100%)\r    (12.50/100%)\r    (100.00/100%)\r\n")
	var got []string
	for len(data) > 0 {
		n, tok, _ := splitCR(data, true)
		if n == 0 {
			break
		}
		got = append(got, string(tok))
		data = data[n:]
	}
	var pcts []string
	for _, line := range got {
		if m := progressRE.FindStringSubmatch(line); m != nil {
			pcts = append(pcts, m[1])
		}
	}
	if want := []string{"0.00", "12.50", "100.00"}; len(pcts) != 3 || pcts[0] != want[0] || pcts[1] != want[1] || pcts[2] != want[2] {
		t.Errorf("progress = %q (lines %q)", pcts, got)
	}
}

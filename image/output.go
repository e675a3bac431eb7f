package image

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Output says how an exported image is written.
type Output struct {
	Format   string // a qemu-img format: one of OutputFormats
	Options  string // qemu-img -o options, e.g. "subformat=streamOptimized"
	Compress string // "" (none), "zlib" or "zstd": qcow2's compressed clusters
	// Progress, when set, receives the conversion's progress in percent
	// (qemu-img convert -p), at most once per whole percent.
	Progress func(percent float64)
}

// OutputFormats are the formats an image can be exported to, with the
// file name extensions that select them.
var OutputFormats = []struct {
	Format     string
	Extensions []string
	Platforms  string
}{
	{"qcow2", []string{".qcow2", ".qcow"}, "QEMU/KVM, OpenStack, Proxmox"},
	{"raw", []string{".raw", ".img"}, "any hypervisor, dd to a disk"},
	{"vmdk", []string{".vmdk"}, "VMware (subformat=streamOptimized for OVA/vSphere)"},
	{"vhdx", []string{".vhdx"}, "Hyper-V"},
	{"vpc", []string{".vhd"}, "Azure (subformat=fixed,force_size=on), Virtual PC"},
	{"vdi", []string{".vdi"}, "VirtualBox"},
}

// Compressions are the values of Output.Compress.
var Compressions = []string{"zlib", "zstd"}

// OutputFormatFor is the format of an exported image: explicit when set
// ("vhd" is accepted for qemu-img's "vpc"), else the one dest's extension
// names. An unknown extension is an error, never a silent qcow2.
func OutputFormatFor(dest, explicit string) (string, error) {
	if explicit != "" {
		if explicit == "vhd" {
			return "vpc", nil
		}
		for _, f := range OutputFormats {
			if f.Format == explicit {
				return f.Format, nil
			}
		}
		return "", fmt.Errorf("output format %q: use one of %s", explicit, strings.Join(outputFormatNames(), ", "))
	}
	ext := strings.ToLower(filepath.Ext(dest))
	for _, f := range OutputFormats {
		if slices.Contains(f.Extensions, ext) {
			return f.Format, nil
		}
	}
	return "", fmt.Errorf("%s: cannot tell the output format from the extension %q: name the file .qcow2, .raw, .img, .vmdk, .vhdx, .vhd or .vdi, or give the format", dest, ext)
}

func outputFormatNames() []string {
	var names []string
	for _, f := range OutputFormats {
		names = append(names, f.Format)
	}
	return names
}

// Check validates o before anything is exported.
func (o Output) Check() error {
	if _, err := OutputFormatFor("", o.Format); err != nil || o.Format == "" {
		return fmt.Errorf("output format %q: use one of %s", o.Format, strings.Join(outputFormatNames(), ", "))
	}
	for _, kv := range strings.Split(o.Options, ",") {
		if kv == "" {
			continue
		}
		key, _, _ := strings.Cut(kv, "=")
		switch key {
		case "backing_file", "backing_fmt", "data_file", "data_file_raw":
			// The export is a standalone image; these would make it depend on another file.
			return fmt.Errorf("output option %q: an exported image stands alone, it cannot name a backing or data file", key)
		}
	}
	switch o.Compress {
	case "":
	case "zlib", "zstd":
		if o.Format != "qcow2" {
			return fmt.Errorf("compression needs the qcow2 format (got %s; a streamOptimized vmdk is compressed by its subformat)", o.Format)
		}
		if o.Compress == "zstd" && !QemuImgHasZstd() {
			return errors.New("this qemu-img cannot write zstd-compressed qcow2 images: use zlib")
		}
	default:
		return fmt.Errorf("compression %q: use %s", o.Compress, strings.Join(Compressions, " or "))
	}
	return nil
}

// convertArgs are qemu-img convert's arguments to write src (a qcow2) to dest as o says.
func (o Output) convertArgs(src, dest string) []string {
	args := []string{"convert", "-q", "-f", "qcow2", "-O", o.Format}
	if o.Progress != nil {
		args[1] = "-p"
	}
	opts := o.Options
	if o.Compress != "" {
		args = append(args, "-c")
		opts = joinOptions(opts, "compression_type="+o.Compress)
	}
	if opts != "" {
		args = append(args, "-o", opts)
	}
	return append(args, src, dest)
}

func joinOptions(a, b string) string {
	if a == "" {
		return b
	}
	return a + "," + b
}

var zstdProbe struct {
	once sync.Once
	ok   bool
}

// QemuImgHasZstd reports whether the host's qemu-img writes qcow2 images
// with zstd-compressed clusters (a build option of QEMU ≥ 5.1): it creates
// one, privately.
func QemuImgHasZstd() bool {
	zstdProbe.once.Do(func() {
		bin, err := exec.LookPath("qemu-img")
		if err != nil {
			return
		}
		dir, err := os.MkdirTemp("", "imgbake-zstd-probe-")
		if err != nil {
			return
		}
		defer os.RemoveAll(dir)
		err = exec.Command(bin, "create", "-q", "-f", "qcow2", "-o", "compression_type=zstd", filepath.Join(dir, "probe.qcow2"), "1M").Run()
		zstdProbe.ok = err == nil
	})
	return zstdProbe.ok
}

// Export writes base+overlay as a new standalone image at dest, as out
// says. It is written beside dest and renamed into place when complete.
func (o *Overlay) Export(ctx context.Context, dest string, out Output) error {
	if err := out.Check(); err != nil {
		return err
	}
	// Absolute, so qemu-img never reads a relative "name:..." as a protocol.
	abs, err := filepath.Abs(dest)
	if err != nil {
		return err
	}
	tmp := abs + ".imgbake-partial"
	args := out.convertArgs(o.Path, tmp)
	if out.Progress != nil {
		err = qemuImgProgress(ctx, out.Progress, args...)
	} else {
		err = qemuImg(ctx, args...)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, dest)
}

// progressRE is how qemu-img -p reports: "    (12.34/100%)", lines ended
// by a carriage return.
var progressRE = regexp.MustCompile(`\((\d+(?:\.\d+)?)/100%\)`)

// qemuImgProgress runs qemu-img with -p and passes its progress on.
func qemuImgProgress(ctx context.Context, progress func(float64), args ...string) error {
	bin, err := exec.LookPath("qemu-img")
	if err != nil {
		return fmt.Errorf("qemu-img not found: install qemu-utils: %w", err)
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	sc := bufio.NewScanner(stdout)
	sc.Split(splitCR)
	last := -1.0
	for sc.Scan() {
		m := progressRE.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		if pct, err := strconv.ParseFloat(m[1], 64); err == nil && math.Floor(pct) > last {
			last = math.Floor(pct)
			progress(pct)
		}
	}
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("%w: qemu-img %s: %v: %s", ErrQemuImg, args[0], err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// splitCR splits at carriage returns as well as newlines.
func splitCR(data []byte, atEOF bool) (int, []byte, error) {
	if i := bytes.IndexAny(data, "\r\n"); i >= 0 {
		return i + 1, data[:i], nil
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}

// Resize sets the virtual size of the image at path (only ever larger:
// callers refuse shrinking).
func Resize(ctx context.Context, path, format string, size int64) error {
	return qemuImg(ctx, "resize", "-q", "-f", format, path, strconv.FormatInt(size, 10))
}

// Command probe profiles one imgbake appliance session piece by piece, for
// BENCHMARKS.md: boot breakdown (guest uptime and agent init at ready),
// per-call costs of exec and write, and where copy-in throughput goes
// (channel alone, tar into tmpfs, tar into ext4, small files, guest disk
// floor), with the CPU time of each qemu thread (vCPU vs I/O) per phase.
//
//	go run ./scripts/bench/probe -image IMG [-payload DIR] [-append ARGS]
//
// It uses the appliance package directly, so it measures the session, not
// the CLI around it. The image is copied first and never modified.
package main

import (
	"archive/tar"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/imgbake/imgbake/appliance"
	"github.com/imgbake/imgbake/appliance/proto"
)

func main() {
	home, _ := os.UserHomeDir()
	image := flag.String("image", filepath.Join(home, ".cache/imgbake/testimages/debian-gpt.qcow2"), "test image (copied)")
	payload := flag.String("payload", filepath.Join(home, ".cache/imgbake/bench/payload-v1/payload"), "copy-in payload (big.bin and src/)")
	appendArgs := flag.String("append", "", "extra kernel command line")
	mem := flag.Int("mem", 512, "appliance memory, MiB")
	skipCopy := flag.Bool("no-copy", false, "boot and per-call costs only")
	cold := flag.Bool("cold", false, "boot the kernel instead of restoring the saved appliance")
	flag.Parse()
	if err := probe(*image, *payload, *appendArgs, *mem, *skipCopy, *cold); err != nil {
		fmt.Fprintln(os.Stderr, "probe:", err)
		os.Exit(1)
	}
}

func probe(image, payload, appendArgs string, mem int, skipCopy, cold bool) error {
	ctx := context.Background()
	work, err := os.MkdirTemp("", "imgbake-probe-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	img := filepath.Join(work, "img.qcow2")
	if out, err := exec.Command("cp", "--sparse=always", image, img).CombinedOutput(); err != nil {
		return fmt.Errorf("cp: %v: %s", err, out)
	}
	t0 := time.Now()
	app, err := appliance.Build(appliance.BuildOptions{})
	if err != nil {
		return err
	}
	build := time.Since(t0)
	fmt.Printf("appliance: %s, initramfs %.1f MiB, %d modules, kernel %s\n", app.Key, float64(app.Size)/(1<<20), app.Modules, app.Kernel.Version)
	t1 := time.Now()
	s, err := appliance.Start(ctx, app, appliance.WithDisk(img, "qcow2", false), appliance.WithMemory(mem),
		appliance.WithKernelArgs(appendArgs), appliance.WithWarm(!cold))
	if err != nil {
		return err
	}
	defer s.Kill()
	ready := time.Since(t1)
	qemu := findQEMU()
	fmt.Printf("\nboot (host clock from Start; warm=%v):\n", s.Timings.Warm)
	fmt.Printf("  appliance build/cache lookup   %7.0f ms\n", ms(build))
	fmt.Printf("  qemu started (+restore if warm) %6.0f ms\n", ms(s.Timings.QEMUStarted))
	fmt.Printf("  agent ready                    %7.0f ms\n", ms(ready))
	if !s.Timings.Warm {
		up := s.Ready.UptimeSec * 1000
		init := s.Ready.InitSec * 1000
		fmt.Printf("    before the guest clock starts %6.0f ms  (qemu init, firmware, kernel+initramfs load, decompression)\n", ms(ready)-up)
		fmt.Printf("    guest kernel until /init     %7.0f ms  (uptime at ready − agent init)\n", up-init)
		fmt.Printf("    agent init (modules, channel) %6.0f ms  (%d modules)\n", init, s.Ready.Modules)
	}
	t2 := time.Now()
	mr, err := s.Mount(ctx, proto.MountArgs{})
	if err != nil {
		return err
	}
	fmt.Printf("  mount                          %7.0f ms  (root %s, %d mounts)\n", ms(time.Since(t2)), mr.Root, len(mr.Mounts))

	// The kernel's own timeline: its ring buffer has every message with a
	// timestamp whatever the console loglevel (quiet keeps the serial
	// console, which is slow under TCG, silent).
	var dmesg bytes.Buffer
	if _, err := s.Exec(ctx, proto.ExecArgs{Argv: []string{"dmesg"}}, nil, &dmesg, &dmesg); err == nil {
		_ = os.WriteFile(filepath.Join(os.TempDir(), "imgbake-probe-dmesg.txt"), dmesg.Bytes(), 0o644)
		fmt.Printf("  kernel timeline (dmesg, full copy in %s):\n", filepath.Join(os.TempDir(), "imgbake-probe-dmesg.txt"))
		keys := []string{"Linux version", "Calibrating delay", "tsc:", "Unpacking initramfs", "Freeing initrd memory",
			"virtio_blk", "vda:", "Freeing unused kernel", "Run /init", "random: crng init", "EXT4-fs (vda"}
		for _, l := range strings.Split(dmesg.String(), "\n") {
			for _, k := range keys {
				if strings.Contains(l, k) {
					fmt.Printf("    %s\n", l)
					break
				}
			}
		}
	}

	// Per-call costs.
	fmt.Printf("\nper call (20 each, median / min / max):\n")
	timeN := func(name string, n int, f func(i int) error) error {
		var d []float64
		before := threadCPU(qemu)
		for i := 0; i < n; i++ {
			t := time.Now()
			if err := f(i); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			d = append(d, ms(time.Since(t)))
		}
		sort.Float64s(d)
		fmt.Printf("  %-40s %6.1f / %6.1f / %6.1f ms   %s\n", name, d[len(d)/2], d[0], d[len(d)-1], cpuDelta(before, threadCPU(qemu)))
		return nil
	}
	var sink bytes.Buffer
	if err := timeN("exec /bin/sh -c true (like `run`)", 20, func(int) error {
		r, err := s.Exec(ctx, proto.ExecArgs{Argv: []string{"/bin/sh", "-c", "true"}}, nil, &sink, &sink)
		if err == nil && r.RC != 0 {
			err = fmt.Errorf("rc %d", r.RC)
		}
		return err
	}); err != nil {
		return err
	}
	if err := timeN("exec /bin/true", 20, func(int) error {
		_, err := s.Exec(ctx, proto.ExecArgs{Argv: []string{"/bin/true"}}, nil, &sink, &sink)
		return err
	}); err != nil {
		return err
	}
	if err := timeN("write 20-byte file", 20, func(i int) error {
		_, err := s.WriteFile(ctx, proto.WriteArgs{Path: fmt.Sprintf("/root/probe-w%02d", i)}, strings.NewReader("key = value 1234567\n"))
		return err
	}); err != nil {
		return err
	}
	if err := timeN("hello (round trip, no work)", 20, func(int) error {
		_, err := s.Hello(ctx)
		return err
	}); err != nil {
		return err
	}
	if skipCopy {
		return closeSession(ctx, s, qemu)
	}

	// Copy-in throughput, piece by piece.
	fmt.Printf("\nthroughput (host clock; qemu thread CPU during the phase):\n")
	big := filepath.Join(payload, "big.bin")
	bigFI, err := os.Stat(big)
	if err != nil {
		return fmt.Errorf("payload: %w (run the benchmark with -w 5 once to generate it)", err)
	}
	const part = 128 << 20
	phase := func(name string, bytes int64, f func() error) error {
		before := threadCPU(qemu)
		t := time.Now()
		if err := f(); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		d := time.Since(t)
		fmt.Printf("  %-52s %7.0f ms %7.1f MB/s   %s\n", name, ms(d), float64(bytes)/1e6/d.Seconds(), cpuDelta(before, threadCPU(qemu)))
		return nil
	}
	if err := phase("channel only: 128 MiB stdin → exec cat >/dev/null", part, func() error {
		f, err := os.Open(big)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = s.Exec(ctx, proto.ExecArgs{Argv: []string{"/bin/sh", "-c", "cat > /dev/null"}}, io.LimitReader(f, part), &sink, &sink)
		return err
	}); err != nil {
		return err
	}
	if err := phase("tar-in 128 MiB file → devtmpfs (/dev, RAM)", part, func() error {
		return tarIn(ctx, s, "/dev/probe", big, part)
	}); err != nil {
		return err
	}
	_, _ = s.Exec(ctx, proto.ExecArgs{Argv: []string{"rm", "-rf", "/dev/probe"}}, nil, &sink, &sink)
	if err := phase("tar-in 128 MiB file → ext4 (/root)", part, func() error {
		return tarIn(ctx, s, "/root/probe1", big, part)
	}); err != nil {
		return err
	}
	if err := phase("  then sync", 0, func() error {
		_, err := s.Exec(ctx, proto.ExecArgs{Argv: []string{"sync"}}, nil, &sink, &sink)
		return err
	}); err != nil {
		return err
	}
	if err := phase("tar-in the 256 MiB big.bin → ext4", bigFI.Size(), func() error {
		return tarIn(ctx, s, "/root/probe2", big, bigFI.Size())
	}); err != nil {
		return err
	}
	var treeBytes int64
	var treeFiles int
	_ = filepath.WalkDir(filepath.Join(payload, "src"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			fi, _ := d.Info()
			treeBytes += fi.Size()
			treeFiles++
		}
		return nil
	})
	if err := phase(fmt.Sprintf("tar-in src/ (%d small files, USTAR) → ext4", treeFiles), treeBytes, func() error {
		return tarTree(ctx, s, "/root/probe3", filepath.Join(payload, "src"), false)
	}); err != nil {
		return err
	}
	if err := phase(fmt.Sprintf("tar-in src/ (%d small files, PAX like fsops) → ext4", treeFiles), treeBytes, func() error {
		return tarTree(ctx, s, "/root/probe4", filepath.Join(payload, "src"), true)
	}); err != nil {
		return err
	}
	if err := phase(fmt.Sprintf("tar-in src/ (%d small files, USTAR) → devtmpfs", treeFiles), treeBytes, func() error {
		return tarTree(ctx, s, "/dev/probe5", filepath.Join(payload, "src"), false)
	}); err != nil {
		return err
	}
	_, _ = s.Exec(ctx, proto.ExecArgs{Argv: []string{"rm", "-rf", "/dev/probe5"}}, nil, &sink, &sink)
	if err := phase(fmt.Sprintf("guest cp -a of the %d files ext4 → ext4 (floor for per-file work)", treeFiles), treeBytes, func() error {
		_, err := s.Exec(ctx, proto.ExecArgs{Argv: []string{"cp", "-a", "/root/probe3/src", "/root/probe6"}}, nil, &sink, &sink)
		return err
	}); err != nil {
		return err
	}
	if err := phase(fmt.Sprintf("guest tar -c | tar -x of the %d files ext4 → ext4", treeFiles), treeBytes, func() error {
		_, err := s.Exec(ctx, proto.ExecArgs{Argv: []string{"/bin/sh", "-c", "mkdir /root/probe7 && tar -C /root/probe3 -cf - src | tar -C /root/probe7 -xf -"}}, nil, &sink, &sink)
		return err
	}); err != nil {
		return err
	}
	// Room for the next test: the copies above filled most of the image.
	_, _ = s.Exec(ctx, proto.ExecArgs{Argv: []string{"/bin/sh", "-c", "rm -rf /root/probe[0-9]* && sync"}}, nil, &sink, &sink)
	if err := phase("guest dd 256 MiB zeros → ext4, conv=fsync", 256<<20, func() error {
		var out bytes.Buffer
		r, err := s.Exec(ctx, proto.ExecArgs{Argv: []string{"dd", "if=/dev/zero", "of=/root/probe-dd", "bs=1M", "count=256", "conv=fsync"}}, nil, &out, &out)
		if err == nil && r.RC != 0 {
			err = fmt.Errorf("rc %d: %s", r.RC, out.String())
		}
		return err
	}); err != nil {
		return err
	}
	if err := phase("guest dd 256 MiB /dev/zero → /dev/null (guest CPU)", 256<<20, func() error {
		_, err := s.Exec(ctx, proto.ExecArgs{Argv: []string{"dd", "if=/dev/zero", "of=/dev/null", "bs=1M", "count=256"}}, nil, &sink, &sink)
		return err
	}); err != nil {
		return err
	}
	return closeSession(ctx, s, qemu)
}

func closeSession(ctx context.Context, s *appliance.Session, qemu int) error {
	t := time.Now()
	before := threadCPU(qemu)
	err := s.Close(ctx)
	fmt.Printf("\nshutdown: %.0f ms  %s\n", ms(time.Since(t)), cpuDelta(before, threadCPU(qemu)))
	return err
}

// tarIn streams one file (its first n bytes) as a tar into dest.
func tarIn(ctx context.Context, s *appliance.Session, dest, file string, n int64) error {
	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		f, err := os.Open(file)
		if err == nil {
			defer f.Close()
			err = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "big.bin", Size: n, Mode: 0o644, ModTime: time.Now()})
		}
		if err == nil {
			_, err = io.Copy(tw, io.LimitReader(f, n))
		}
		if err == nil {
			err = tw.Close()
		}
		pw.CloseWithError(err)
	}()
	_, err := s.TarIn(ctx, dest, pr)
	return err
}

func tarTree(ctx context.Context, s *appliance.Session, dest, dir string, pax bool) error {
	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(filepath.Dir(dir), p)
			fi, err := d.Info()
			if err != nil {
				return err
			}
			h, err := tar.FileInfoHeader(fi, "")
			if err != nil {
				return err
			}
			h.Name = rel
			if pax {
				// As fsops writes them: PAX, so sub-second mtimes add a
				// PAX record (one more 512-byte header pair) per entry.
				h.Format = tar.FormatPAX
				h.ModTime = fi.ModTime()
			} else {
				h.Format = tar.FormatUSTAR
				h.ModTime = fi.ModTime().Truncate(time.Second)
				h.AccessTime, h.ChangeTime = time.Time{}, time.Time{}
			}
			if d.IsDir() {
				h.Name += "/"
			}
			if err := tw.WriteHeader(h); err != nil {
				return err
			}
			if d.Type().IsRegular() {
				f, err := os.Open(p)
				if err != nil {
					return err
				}
				defer f.Close()
				_, err = io.Copy(tw, f)
				return err
			}
			return nil
		})
		if err == nil {
			err = tw.Close()
		}
		pw.CloseWithError(err)
	}()
	_, err := s.TarIn(ctx, dest, pr)
	return err
}

// findQEMU is the qemu child of this process.
func findQEMU() int {
	ents, _ := os.ReadDir("/proc")
	me := os.Getpid()
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(b, ')')
		j := bytes.IndexByte(b, '(')
		if i < 0 || j < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(me) && strings.HasPrefix(string(b[j+1:i]), "qemu-system") {
			return pid
		}
	}
	return 0
}

// threadCPU is the CPU time (ms) of each thread of pid, by thread name.
func threadCPU(pid int) map[string]float64 {
	out := map[string]float64{}
	if pid == 0 {
		return out
	}
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	for _, e := range ents {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", pid, e.Name()))
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(b, ')')
		j := bytes.IndexByte(b, '(')
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 13 {
			continue
		}
		ut, _ := strconv.ParseFloat(f[11], 64)
		st, _ := strconv.ParseFloat(f[12], 64)
		name := string(b[j+1:i]) + "/" + e.Name()
		out[name] += (ut + st) * 10 // clock ticks of 10 ms
	}
	return out
}

// cpuDelta reports the CPU time each qemu thread used in between: the
// busiest is the TCG vCPU thread; the main loop does the chardev and disk I/O.
func cpuDelta(a, b map[string]float64) string {
	type td struct {
		name string
		d    float64
	}
	var ts []td
	var total float64
	for k, v := range b {
		if d := v - a[k]; d > 0 {
			ts = append(ts, td{k, d})
			total += d
		}
	}
	if total == 0 {
		return ""
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i].d > ts[j].d })
	var parts []string
	for i, t := range ts {
		if i == 3 {
			break
		}
		parts = append(parts, fmt.Sprintf("tid %s %.0f", t.name[strings.LastIndexByte(t.name, '/')+1:], t.d))
	}
	return fmt.Sprintf("[qemu CPU %.0f ms: %s]", total, strings.Join(parts, ", "))
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

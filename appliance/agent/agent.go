// Package agent is imgbake's init inside the appliance: it sets up the
// minimal system, loads the kernel modules listed by the host, opens the
// virtio-serial channel and serves the host's requests until told to power
// off. It also runs in-process on the host for protocol tests (see WithRoot).
package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/imgbake/imgbake/appliance/proto"
)

// Version is the protocol/agent version reported in Ready.
const Version = proto.Version

// Agent serves one host.
type Agent struct {
	reaper  *reaper
	sysroot string
	// state guards rootfd and mounted: handlers run concurrently, and
	// mount and shutdown change them under the others.
	state   sync.Mutex
	rootfd  int
	mounted bool

	freezeMu    sync.Mutex // one freeze or thaw at a time
	remountedRO []string   // mounts a freeze made read-only (they cannot freeze)
	readOnly    bool
	noJournal   bool // MountArgs.Disposable
	mountInfo   *proto.MountResult
	powerOff    chan struct{}
	initStart   time.Time

	netMu sync.Mutex // network is brought up once, on first use
	netUp bool
	netIf string
	// netForCommands: every command in the image gets the network and the
	// appliance's resolver (resolver.go), set up before the first.
	netForCommands bool
	resolver       resolverState
	envMu          sync.Mutex // guards runTried
	runTried       bool       // the tmpfs /run was set up (or could not be)
	runTmpfs       bool       // /run of the image is our tmpfs (guestenv.go)
	modules        int
	pid1           bool
	noChroot       bool // tests: run commands in place
	loaded         map[string]bool

	// The data disk of bulk copies (datadisk.go), opened on first use.
	dataMu   sync.Mutex
	dataFile *os.File

	// LVM volumes this agent activated (lvm.go), removed before power-off.
	lvmMu    sync.Mutex
	dmActive []string
	mdActive []*mdArray // md arrays started, stopped after dmActive
	lvmVGs   []proto.VolumeGroup
	// LUKS volumes found by the last probe (luks.go), and the image's
	// crypttab names of the opened ones.
	luksVols     []proto.LUKSVolume
	cryptAliases map[string]string
}

// devNull is stdin for commands; opened after /dev exists.
var devNull *os.File

func newAgent() *Agent {
	return &Agent{reaper: newReaper(), sysroot: proto.Sysroot, rootfd: -1, powerOff: make(chan struct{}, 1), loaded: map[string]bool{}}
}

func (a *Agent) register(s *server) {
	s.handle(proto.OpHello, a.handleHello)
	s.handle(proto.OpMount, a.handleMount)
	s.handle(proto.OpInspect, a.handleInspect)
	s.handle(proto.OpExec, a.handleExec)
	s.handle(proto.OpWrite, a.handleWrite)
	s.handle(proto.OpRead, a.handleRead)
	s.handle(proto.OpLUKSHeader, a.handleLUKSHeader)
	s.handle(proto.OpStat, a.handleStat)
	s.handle(proto.OpMkdir, a.handleMkdir)
	s.handle(proto.OpDelete, a.handleDelete)
	s.handle(proto.OpTarIn, a.handleTarIn)
	s.handle(proto.OpTarOut, a.handleTarOut)
	s.handle(proto.OpShutdown, a.handleShutdown)
	a.registerNetOps(s)
	a.registerResumeOps(s)
	a.registerMetaOps(s)
	a.registerRepairOps(s)
	a.registerFreezeOps(s)
	a.registerTrimOps(s)
	a.registerGrowOps(s)
}

func (a *Agent) startReaper() {
	sig := make(chan os.Signal, 16)
	signal.Notify(sig, syscall.SIGCHLD)
	ch := make(chan struct{}, 1)
	go func() {
		for range sig {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}()
	go a.reaper.run(ch)
}

func (a *Agent) handleHello(context.Context, *stream, json.RawMessage) (any, error) {
	return a.ready(), nil
}

func (a *Agent) ready() proto.Ready {
	r := proto.Ready{Version: Version, Modules: a.modules, InitSec: time.Since(a.initStart).Seconds()}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		r.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	var si unix.Sysinfo_t
	if unix.Sysinfo(&si) == nil {
		r.UptimeSec = float64(si.Uptime)
	}
	if data, err := os.ReadFile("/proc/uptime"); err == nil {
		var up float64
		if _, err := fmt.Sscanf(string(data), "%f", &up); err == nil {
			r.UptimeSec = up
		}
	}
	return r
}

// handleShutdown stops every process, unmounts and syncs; the power-off
// itself happens after the result reached the host.
func (a *Agent) handleShutdown(context.Context, *stream, json.RawMessage) (any, error) {
	var problems []string
	// ESRCH: no process besides us, so nothing to give time to exit.
	if a.pid1 && syscall.Kill(-1, syscall.SIGTERM) == nil {
		time.Sleep(20 * time.Millisecond)
		_ = syscall.Kill(-1, syscall.SIGKILL)
	}
	// The image's resolv.conf as it was, before anything is unmounted.
	if err := a.releaseResolver(); err != nil {
		problems = append(problems, err.Error())
	}
	unix.Sync()
	if a.isMounted() || len(mountsBelow(a.sysroot)) > 0 {
		if a.pid1 {
			problems = a.unmountAll()
		} else {
			a.state.Lock()
			a.mounted = false
			a.state.Unlock()
		}
	}
	// Nothing may hold the disks when the host commits the image.
	problems = append(problems, a.deactivateLVM()...)
	problems = append(problems, a.stopMD()...)
	unix.Sync()
	select {
	case a.powerOff <- struct{}{}:
	default:
	}
	if len(problems) > 0 {
		return nil, errors.New(strings.Join(problems, "; "))
	}
	return struct{}{}, nil
}

// Main is the appliance's /init.
func Main() {
	// At least 2 Ps even on one vCPU (an appliance started with -smp 1):
	// with GOMAXPROCS 1 the runtime hands the P to a new thread whenever a
	// syscall outlasts a sysmon tick (20 µs), which under TCG is nearly
	// every syscall, and file extraction ran 2x slower.
	runtime.GOMAXPROCS(max(2, runtime.NumCPU()))
	a := newAgent()
	a.initStart = time.Now()
	a.pid1 = os.Getpid() == 1
	if a.pid1 {
		if err := setupSystem(); err != nil {
			log.Printf("agent: setup: %v", err)
		}
		devNull, _ = os.Open(os.DevNull)
		a.modules = loadModules(proto.ModulesBoot)
		if kernelArg(proto.PreloadArg) {
			for _, g := range preloadGroups {
				a.ensureFSModules(g)
			}
		}
	}
	a.startReaper()
	port, err := findChannel(10 * time.Second)
	if err != nil {
		log.Printf("agent: %v", err)
		halt()
	}
	a.serveChannel(port)
	halt()
}

// serveChannel serves until a shutdown. A read error or EOF (the host not
// connected, e.g. right after a snapshot restore) reopens the port.
func (a *Agent) serveChannel(port string) {
	for {
		f, err := os.OpenFile(port, os.O_RDWR, 0)
		if err != nil {
			log.Printf("agent: open %s: %v", port, err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		srv := newServer(f)
		a.register(srv)
		if err := srv.sendJSON(0, proto.TReady, a.ready()); err != nil {
			log.Printf("agent: sending ready: %v", err)
		}
		done := make(chan error, 1)
		go func() { done <- srv.serve(context.Background(), f) }()
		select {
		case <-a.powerOff:
			// Let the result frame leave the virtqueue before power goes.
			time.Sleep(30 * time.Millisecond)
			f.Close()
			return
		case err := <-done:
			f.Close()
			if !errors.Is(err, io.EOF) {
				log.Printf("agent: channel: %v", err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// Serve runs the agent on an existing connection against root (a host
// directory standing in for the mounted image). It is for tests: no PID 1
// duties, no modules, no mounting. It returns when rw is closed or after a
// shutdown request.
func Serve(ctx context.Context, rw io.ReadWriter, root string) error {
	a := newAgent()
	a.initStart = time.Now()
	a.sysroot = root
	if devNull == nil {
		devNull, _ = os.Open(os.DevNull)
	}
	fd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	a.rootfd = fd
	a.mounted = true
	a.noChroot = true
	defer unix.Close(fd)
	a.reaper.ownOnly = true
	srv := newServer(rw)
	a.register(srv)
	// Tests cannot chroot as non-root; run commands in place instead.
	srv.handle(proto.OpMount, func(context.Context, *stream, json.RawMessage) (any, error) {
		return proto.MountResult{Root: root, Mounts: []proto.Mount{{Mountpoint: "/", Device: root, Type: "dir"}}}, nil
	})
	if err := srv.sendJSON(0, proto.TReady, a.ready()); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- srv.serve(ctx, rw) }()
	select {
	case <-a.powerOff:
		time.Sleep(10 * time.Millisecond)
		return nil
	case err := <-done:
		if errors.Is(err, io.EOF) {
			return nil
		}
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func setupSystem() error {
	syscall.Umask(0o022)
	for _, m := range []struct{ src, dst, typ, data string }{
		{"proc", "/proc", "proc", ""},
		{"sysfs", "/sys", "sysfs", ""},
		{"devtmpfs", "/dev", "devtmpfs", ""},
		{"tmpfs", "/run", "tmpfs", "mode=0755"},
		{"tmpfs", "/tmp", "tmpfs", "mode=1777"},
	} {
		_ = os.MkdirAll(m.dst, 0o755)
		if err := unix.Mount(m.src, m.dst, m.typ, unix.MS_NOSUID, m.data); err != nil && !errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("mount %s: %w", m.dst, err)
		}
	}
	// The initramfs has no /dev/console node (the kernel found none for
	// init), so fds 0-2 are closed: point them at the console before any
	// other open can take those numbers.
	if fd, err := unix.Open("/dev/console", unix.O_RDWR, 0); err == nil {
		for i := 0; i < 3; i++ {
			if fd != i {
				_ = unix.Dup2(fd, i)
			}
		}
		if fd > 2 {
			unix.Close(fd)
		}
	}
	_ = os.MkdirAll("/dev/pts", 0o755)
	_ = unix.Mount("devpts", "/dev/pts", "devpts", unix.MS_NOSUID|unix.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=620")
	log.SetOutput(os.Stderr)
	log.SetFlags(0)
	log.SetPrefix("imgbake-agent: ")
	return nil
}

// loadModules loads the modules of one group from the list the host wrote
// (proto.ModuleList), dependencies first. The "boot" group is loaded at
// start; filesystem groups ("xfs", "btrfs", ...) only when such a filesystem
// is found, because some (raid6_pq for btrfs) benchmark themselves on load,
// which is slow under TCG. Failures are logged, not fatal.
func loadModules(group string) int {
	data, err := os.ReadFile(proto.ModuleList)
	if err != nil {
		return 0
	}
	n := 0
	for _, p := range proto.ModulesOf(data, group) {
		f, err := os.Open(p)
		if err != nil {
			log.Printf("module %s: %v", p, err)
			continue
		}
		err = unix.FinitModule(int(f.Fd()), "", 0)
		f.Close()
		if err != nil && !errors.Is(err, unix.EEXIST) {
			log.Printf("module %s: %v", filepath.Base(p), err)
			continue
		}
		n++
	}
	return n
}

// findChannel waits for the virtio-serial port named proto.ChannelName.
func findChannel(timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		ents, _ := os.ReadDir("/sys/class/virtio-ports")
		for _, e := range ents {
			name, err := os.ReadFile(filepath.Join("/sys/class/virtio-ports", e.Name(), "name"))
			if err == nil && strings.TrimSpace(string(name)) == proto.ChannelName {
				dev := "/dev/" + e.Name()
				if _, err := os.Stat(dev); err == nil {
					return dev, nil
				}
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("virtio-serial port %s not found", proto.ChannelName)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func halt() {
	unix.Sync()
	if os.Getpid() == 1 {
		_ = unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	}
	os.Exit(1)
}

// preloadGroups are the filesystem drivers loaded before a boot that is
// saved for warm starts (proto.PreloadArg), so restored appliances have
// them: loading at mount time cost every run about 70 ms for vfat (the
// EFI system partition of most cloud images), 800 ms for xfs (the root
// of the RHEL family) and 1.5 s for btrfs (Fedora, openSUSE: raid6_pq
// benchmarks itself on load) under TCG. The saved state grows by about
// 3 MiB; a Debian warm start was not measurably slower (160-230 ms to
// ready either way). Other boots load them on first use.
var preloadGroups = []string{"vfat", "xfs", "btrfs"}

// kernelArg reports whether the word arg is on the kernel command line.
func kernelArg(arg string) bool {
	b, err := os.ReadFile("/proc/cmdline")
	return err == nil && slices.Contains(strings.Fields(string(b)), arg)
}

// ensureFSModules loads the driver group for a filesystem type once.
func (a *Agent) ensureFSModules(fstype string) {
	if !a.pid1 || a.loaded[fstype] {
		return
	}
	a.loaded[fstype] = true
	a.modules += loadModules(fstype)
}

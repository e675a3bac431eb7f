// Package testimages gives tests reproducible Debian 12 disk images and
// independent ways to look inside them.
//
// The images are built by build.sh (next to this file) into a cache directory
// (see Dir) and reused across test runs. Tests must not modify the cached
// images: use Fresh to get a private copy.
//
// The readers (ReadFile, ReadFiles, Stat and their Debugfs/VM variants) are
// deliberately independent of imgbake's own code: ext2/3/4 filesystems are read
// with debugfs from e2fsprogs, everything else (and ext4 with an unreplayed
// journal) by a throw-away verifier VM: the host kernel, a busybox initramfs
// built on the fly, the filesystem mounted read-only, files sent back base64
// encoded over a serial port.
package testimages

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imgbake/imgbake/internal/vmtest"
)

// Image names.
const (
	// GPT is a qcow2 image: GPT with BIOS boot (1), ESP vfat (2), ext4 root (3).
	GPT = "debian-gpt.qcow2"
	// MBRXFS is a raw image: MBR (dos) with one xfs root partition (1), label xfsroot.
	MBRXFS = "debian-mbr-xfs.raw"
	// NoPart is a raw image that is a bare ext4 filesystem, no partition table.
	NoPart = "debian-nopart.raw"
	// Python is NoPart's layout plus python3 (Ansible targets need it):
	// from the Debian mirror, else from the host's installed packages. It
	// is not in Names: only the tests that need it build it.
	Python = "debian-python.raw"
	// LVM is a raw GPT image with root on LVM: /boot ext4 (1) and a PV (2)
	// with VG vg0, LVs root (ext4, the Debian root, fstab
	// /dev/mapper/vg0-root), swap, data (ext4 at /srv, fstab /dev/vg0/data)
	// and alt (ext4 holding only another OS's os-release: a second OS for
	// multi-boot inspection). Built on demand like Python.
	LVM = "debian-lvm.raw"
	// CentOS6 is an OS without os-release (CentOS 6 style: /etc/centos-release
	// "CentOS release 6.10 (Final)", redhat-release and system-release
	// symlinks to it, the host name in /etc/sysconfig/network, an rpm
	// database) on the Debian rootfs: a raw MBR image, /boot ext4 (1) and a
	// PV (2) with VG vg_centos6, LVs lv_root (ext4, fstab
	// /dev/mapper/vg_centos6-lv_root) and lv_swap. Built on demand.
	CentOS6 = "centos6-lvm.raw"
	// Split is a raw GPT image whose root is assembled from its fstab:
	// /boot (1), an ESP at /boot/efi (2), the root (3) holding nothing that
	// names the OS (/etc/os-release points into /usr), /usr (4), /var (5),
	// /home (6), swap (7), a noauto scratch filesystem (8), a bind mount of
	// /home/shared on /srv/shared and a nofail entry for a missing
	// filesystem. Built on demand.
	Split = "debian-split.raw"
	// Boot is a qcow2 image that really boots: NoPart's layout (2 GiB)
	// with systemd as init, udev, dbus, openssh-server (enabled, host keys
	// made), systemd-networkd (DHCP on en*), a fixed machine-id and the
	// cloud kernel with an initramfs for a virtio disk. No bootloader: boot
	// it with QEMU's -kernel/-initrd taken out of the image (Info.Kernel,
	// Info.Initrd) and root=UUID=Info.RootUUID. Its packages are the host's
	// own. Built on demand like Python.
	Boot = "debian-boot.qcow2"
	// FedoraBtrfs is Fedora Cloud's layout: a raw GPT image, BIOS boot (1),
	// /boot ext4 (2), one btrfs filesystem (3, label fedora) whose top level
	// is the default subvolume and holds the subvolumes root (the OS, fstab
	// subvol=root,compress=zstd:1) and home (/home, subvol=home);
	// os-release of Fedora 39. Built on demand, like the other btrfs images.
	FedoraBtrfs = "fedora-btrfs.raw"
	// OpenSUSEBtrfs is openSUSE's layout: a raw GPT image, BIOS boot (1) and
	// btrfs (2) with subvolumes @, @/.snapshots, @/.snapshots/1/snapshot
	// (the OS and the default subvolume, so fstab mounts / without
	// subvol=), @/home and @/var (fstab subvol=/@/home, subvol=/@/var);
	// os-release of openSUSE Leap 15.5.
	OpenSUSEBtrfs = "opensuse-btrfs.raw"
	// UbuntuBtrfs is Ubuntu's btrfs layout: a raw MBR image with one btrfs
	// partition (1) holding the subvolumes @ (the OS, fstab subvol=@) and
	// @home (/home, subvol=@home); os-release of Ubuntu 22.04.
	UbuntuBtrfs = "ubuntu-btrfs.raw"
	// LUKS2 is a raw GPT image with an encrypted root as Debian's
	// installer makes it: /boot ext4 (1) and a LUKS2 volume (2, argon2id)
	// holding the root ext4, fstab /dev/mapper/luks-UUID, crypttab naming
	// that mapping. Opened with Info.Passphrase; Info.VolumeKey decrypts
	// the payload (DecryptPayload). Built on demand.
	LUKS2 = "debian-luks2.raw"
	// LUKS1 is LUKS2's layout with a LUKS1 volume (PBKDF2-sha256),
	// crypttab name sda2_crypt and fstab /dev/mapper/sda2_crypt.
	LUKS1 = "debian-luks1.raw"
	// LUKSLVM is LVM on LUKS: the LUKS2 volume (PBKDF2) holds a PV of VG
	// vgcrypt with LVs root (fstab by its filesystem UUID), swap and home,
	// itself a LUKS1 volume (crypttab home_crypt /dev/vgcrypt/home, fstab
	// /dev/mapper/home_crypt /home, /marker in it; see Info.HomeVolume).
	LUKSLVM = "debian-luks-lvm.raw"
	// Alpine is an Alpine-like layout, not real Alpine: a raw MBR image,
	// one ext4 root (1) made of the host's static busybox (applet links in
	// /bin, /sbin, /usr/bin, /usr/sbin), Alpine 3.19.1's release files,
	// passwd/shadow/group in Alpine's form, OpenRC's layout (/etc/init.d
	// with local and crond, /etc/runlevels/*, /etc/local.d) without an
	// openrc binary, and an apk database without apk. Debian's busybox has
	// no adduser, addgroup or chpasswd. Built on demand.
	Alpine = "alpine.raw"
	// FlatcarUsr is a CoreOS/Flatcar-like split of the Debian rootfs: GPT,
	// the root ext4 (1) whose /etc/os-release links to ../usr/lib/os-release
	// (Flatcar's) and /usr on its own ext4 (2), fstab "/usr ext4 ro"; no
	// package manager. Flatcar's own mount.usr= and dm-verity are not
	// emulated. Built on demand.
	FlatcarUsr = "flatcar-usr.raw"
	// RHELLVM is RHEL 9's default layout: a raw GPT image, /boot xfs (1)
	// and an LVM PV (2) with VG rhel, LVs root (xfs, fstab
	// /dev/mapper/rhel-root) and swap; the os-release, redhat-release and
	// an empty SQLite rpm database of RHEL 9.3 on the Debian rootfs.
	// Built on demand.
	RHELLVM = "rhel-lvm.raw"
	// RAID1 is Debian on md RAID1: a raw GPT image, /boot ext4 (1) and
	// three arrays of two member partitions each, metadata 1.2 with the
	// data Info.RAIDDataOffset into each member: debian:0 (2, 3) the ext4
	// root (fstab UUID=), debian:1 (4, 5) an LVM PV with VG raidvg, LV srv
	// (ext4, /srv/data), debian:home (6, 7) the ext4 /home (fstab
	// /dev/md/home). Info gives where each filesystem lies on both of its
	// members. Built on demand.
	RAID1 = "debian-raid1.raw"
	// Arch is Arch Linux's system files on debian-nopart.raw's layout (a
	// bare ext4 filesystem): Arch's os-release, /etc/arch-release,
	// pacman.conf and a pacman database with one package, no pacman
	// binary. Built on demand.
	Arch = "arch.raw"
)

// onDemand are the images build.sh builds only when asked (not in Names).
var onDemand = []string{Python, LVM, CentOS6, Split, Boot, FedoraBtrfs, OpenSUSEBtrfs, UbuntuBtrfs, LUKS2, LUKS1, LUKSLVM,
	Alpine, FlatcarUsr, RHELLVM, RAID1, Arch}

// Names lists every image build.sh can make.
var Names = []string{GPT, MBRXFS, NoPart}

// Info is an image's sidecar file (NAME.json), written by build.sh.
type Info struct {
	Name           string `json:"-"`
	Format         string `json:"format"`          // image format: "qcow2" or "raw"
	PartitionTable string `json:"partition_table"` // "gpt", "dos" or "none"
	RootPartition  int    `json:"root_partition"`  // 1-based; 0: the whole disk is the filesystem
	FSType         string `json:"fstype"`          // root filesystem: "ext4", "xfs" or "btrfs"
	RootUUID       string `json:"root_uuid"`       // root filesystem UUID (lower case)
	Label          string `json:"label"`           // root filesystem label
	ESPPartition   int    `json:"esp_partition,omitempty"`
	ESPUUID        string `json:"esp_uuid,omitempty"` // vfat volume id as blkid shows it, e.g. 5EA1-E5B0
	DiskGUID       string `json:"disk_guid,omitempty"`
	RootPartUUID   string `json:"root_partuuid,omitempty"`
	DiskID         string `json:"disk_id,omitempty"` // MBR disk identifier, e.g. 0x5ea1b0d1
	Hostname       string `json:"hostname"`
	// LVM images: the VG, and where the LVs' filesystems lie in the raw
	// image (byte offsets and sizes as LVM allocated them), for ReadFileAt.
	VG         string `json:"vg,omitempty"`
	RootOffset int64  `json:"root_offset,omitempty"`
	DataOffset int64  `json:"data_offset,omitempty"`
	AltOffset  int64  `json:"alt_offset,omitempty"`
	RootSize   int64  `json:"root_size,omitempty"`
	SwapSize   int64  `json:"swap_size,omitempty"`
	DataSize   int64  `json:"data_size,omitempty"`
	AltSize    int64  `json:"alt_size,omitempty"`
	BootUUID   string `json:"boot_uuid,omitempty"`
	// Images with several filesystems: their partitions (1-based).
	BootPartition    int `json:"boot_partition,omitempty"`
	UsrPartition     int `json:"usr_partition,omitempty"`
	VarPartition     int `json:"var_partition,omitempty"`
	HomePartition    int `json:"home_partition,omitempty"`
	ScratchPartition int `json:"scratch_partition,omitempty"`
	// btrfs images: the default subvolume (its path; "" for the top level)
	// and its id.
	DefaultSubvolume   string `json:"default_subvolume,omitempty"`
	DefaultSubvolumeID int    `json:"default_subvolume_id,omitempty"`
	// md RAID images: where each filesystem lies on its second member
	// (RootOffset, DataOffset and HomeOffset give the first), the data
	// offset inside a member, and the member partitions.
	RootMirrorOffset int64  `json:"root_mirror_offset,omitempty"`
	DataMirrorOffset int64  `json:"data_mirror_offset,omitempty"`
	HomeOffset       int64  `json:"home_offset,omitempty"`
	HomeMirrorOffset int64  `json:"home_mirror_offset,omitempty"`
	RAIDDataOffset   int64  `json:"raid_data_offset,omitempty"`
	RAIDMembers      string `json:"raid_members,omitempty"` // partition numbers, space-separated
	// OSNote says what an image that plays another distribution really
	// holds.
	OSNote string `json:"os_note,omitempty"`
	// MissingUUID is a filesystem UUID the image's fstab names that is on
	// no disk.
	MissingUUID string `json:"missing_uuid,omitempty"`
	// Bootable images: the kernel and initramfs inside the image, and the
	// machine-id the image was built with.
	Kernel    string `json:"kernel,omitempty"`
	Initrd    string `json:"initrd,omitempty"`
	MachineID string `json:"machine_id,omitempty"`
	// LUKS images: the volume (partition, version, UUID, the mapping
	// name and its crypttab name), the passphrase that opens it, the
	// volume key cryptsetup reported and where the payload lies in the
	// raw image. RootOffset is then the root filesystem's offset in the
	// plaintext of the payload.
	LUKSPartition int    `json:"luks_partition,omitempty"`
	LUKSVersion   int    `json:"luks_version,omitempty"`
	LUKSUUID      string `json:"luks_uuid,omitempty"`
	Mapper        string `json:"mapper,omitempty"`
	CrypttabName  string `json:"crypttab_name,omitempty"`
	Passphrase    string `json:"passphrase,omitempty"`
	VolumeKey     string `json:"volume_key,omitempty"` // hex
	PayloadOffset int64  `json:"payload_offset,omitempty"`
	PayloadSize   int64  `json:"payload_size,omitempty"`
	SectorSize    int64  `json:"sector_size,omitempty"` // the payload's encryption sectors; 0 means 512
	// LUKSLVM: LV home is a LUKS1 volume; where its payload lies in the
	// plaintext of the outer one, and its volume key.
	HomeLUKSUUID      string `json:"home_luks_uuid,omitempty"`
	HomeVolumeKey     string `json:"home_volume_key,omitempty"`
	HomePayloadOffset int64  `json:"home_payload_offset,omitempty"`
	HomePayloadSize   int64  `json:"home_payload_size,omitempty"`
	HomeUUID          string `json:"home_uuid,omitempty"` // the filesystem in it
}

// HomeVolume describes LUKSLVM's inner volume (LV home) the way Info
// describes the outer one, for DecryptPayload on the outer plaintext.
func (i Info) HomeVolume() Info {
	return Info{Name: i.Name + " LV home", VolumeKey: i.HomeVolumeKey, PayloadOffset: i.HomePayloadOffset, PayloadSize: i.HomePayloadSize}
}

// Dir is the cache directory:
// ${IMGBAKE_TESTIMAGES_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/imgbake/testimages}.
func Dir() string {
	if d := os.Getenv("IMGBAKE_TESTIMAGES_DIR"); d != "" {
		return d
	}
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home := os.Getenv("HOME")
		if home == "" {
			home, _ = os.UserHomeDir()
		}
		cache = filepath.Join(home, ".cache")
	}
	return filepath.Join(cache, "imgbake", "testimages")
}

var (
	buildMu sync.Mutex
	// buildFailed maps an image whose build failed in this process to its
	// build log: the other tests that need it fail at once, naming the log,
	// rather than building again.
	buildFailed = map[string]string{}
)

// Path returns the path of the cached image name (one of Names), building it
// with build.sh first if needed (the first build takes a minute or more; the
// Debian rootfs is downloaded once). The returned image must not be
// modified: see Fresh.
//
// When the image is missing and cannot be built here (not root, a build
// tool missing) the test fails under IMGBAKE_VM_TESTS=1 and is skipped
// otherwise (see internal/vmtest). When build.sh fails the test fails,
// naming the build log (NAME.build.log in Dir), and so does every later
// test of the process that needs the image.
func Path(t testing.TB, name string) string {
	t.Helper()
	return path(t, name)
}

// tb is the part of testing.TB that Path and build use.
type tb interface {
	Helper()
	Skip(args ...any)
	Logf(format string, args ...any)
	Fatalf(format string, args ...any)
}

func path(t tb, name string) string {
	t.Helper()
	if !known(name) {
		t.Fatalf("testimages: unknown image %q (known: %s)", name, strings.Join(append(slices.Clone(Names), onDemand...), ", "))
		return ""
	}
	p := filepath.Join(Dir(), name)
	if fileExists(p) && fileExists(p+".json") {
		return p
	}
	buildMu.Lock()
	defer buildMu.Unlock()
	if fileExists(p) && fileExists(p+".json") {
		return p
	}
	if log, ok := buildFailed[name]; ok {
		t.Fatalf("testimages: %s is not built: build.sh %s failed earlier in this run; its log is %s", name, name, log)
		return ""
	}
	how := "`make images` (as root) builds it"
	if slices.Contains(onDemand, name) {
		how = fmt.Sprintf("`testimages/build.sh %s` (as root) builds it", name)
	}
	if os.Geteuid() != 0 {
		vmtest.Missing(t, "test image %s is not built in %s and building it needs root: %s, or run the tests as root", name, Dir(), how)
		return ""
	}
	tools := []string{"qemu-img", "mkfs.xfs", "xfs_db", "sfdisk", "mkfs.ext4", "mkfs.vfat", "go", "flock"}
	switch name {
	case LVM, CentOS6:
		tools = append(tools, "lvm", "losetup", "mkswap")
	case Split:
		tools = append(tools, "mkswap")
	}
	if name == Boot {
		tools = append(tools, "chroot", "dpkg-deb", "dpkg-query", "lsinitramfs")
	}
	if !fileExists(filepath.Join(Dir(), "rootfs-bookworm.tar")) {
		tools = append(tools, "debootstrap")
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			vmtest.Missing(t, "test image %s is not built in %s and building it needs %s: %s, then %s", name, Dir(), tool, vmtest.InstallDeps, how)
			return ""
		}
	}
	script, err := buildScript()
	if err != nil {
		t.Fatalf("testimages: %v", err)
		return ""
	}
	return build(t, script, name)
}

// build runs script (build.sh) for the image name, logging its output to
// the test and to Dir()/NAME.build.log, and returns the image's path. A
// failure fails t naming the log and is remembered in buildFailed. The
// caller holds buildMu.
func build(t tb, script, name string) string {
	t.Helper()
	p := filepath.Join(Dir(), name)
	logPath, logFile := openBuildLog(name)
	t.Logf("testimages: building %s into %s (may take minutes; log: %s)", name, Dir(), logPath)
	start := time.Now()
	cmd := exec.Command("bash", script, name)
	cmd.Env = append(os.Environ(), "IMGBAKE_TESTIMAGES_DIR="+Dir())
	pr, pw := io.Pipe()
	cmd.Stdout = pw
	cmd.Stderr = pw
	var tail []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			t.Logf("  %s", line)
			if logFile != nil {
				fmt.Fprintln(logFile, line)
			}
			tail = append(tail, line)
			if len(tail) > 40 {
				tail = tail[1:]
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	err := cmd.Run()
	pw.Close()
	<-done
	if err == nil && !fileExists(p) {
		err = fmt.Errorf("it succeeded but %s is missing", p)
	}
	if logFile != nil {
		if err != nil {
			fmt.Fprintf(logFile, "testimages: build.sh %s failed: %v\n", name, err)
		}
		if cerr := logFile.Close(); cerr != nil && err == nil {
			t.Logf("testimages: writing %s: %v", logPath, cerr)
		}
	}
	if err != nil {
		buildFailed[name] = logPath
		t.Fatalf("testimages: building test image %s failed after %v: build.sh: %v\nbuild log: %s\nits last lines:\n%s",
			name, time.Since(start).Round(time.Second), err, logPath, strings.Join(tail, "\n"))
		return ""
	}
	t.Logf("testimages: built %s in %v", name, time.Since(start).Round(100*time.Millisecond))
	return p
}

// openBuildLog creates Dir()/NAME.build.log (else a file in the temporary
// directory) for build.sh's output. With neither, the log is the test's
// own output only.
func openBuildLog(name string) (string, *os.File) {
	p := filepath.Join(Dir(), name+".build.log")
	if err := os.MkdirAll(Dir(), 0o755); err == nil {
		if f, err := os.Create(p); err == nil {
			return p, f
		}
	}
	if f, err := os.CreateTemp("", "imgbake-testimage-"+name+"-*.build.log"); err == nil {
		return f.Name(), f
	}
	return "(none: the test output above)", nil
}

// Fresh returns a private sparse copy of the image name in t.TempDir(),
// removed when the test ends, so tests never modify the cache.
func Fresh(t testing.TB, name string) string {
	t.Helper()
	src := Path(t, name)
	dst := filepath.Join(t.TempDir(), name)
	out, err := exec.Command("cp", "--sparse=always", src, dst).CombinedOutput()
	if err != nil {
		t.Fatalf("testimages: copying %s: %v: %s", name, err, out)
	}
	return dst
}

// InfoOf reads the sidecar file of the image name (building the image if
// needed, see Path).
func InfoOf(t testing.TB, name string) Info {
	t.Helper()
	p := Path(t, name)
	data, err := os.ReadFile(p + ".json")
	if err != nil {
		t.Fatalf("testimages: %v", err)
	}
	var info Info
	if err := json.Unmarshal(data, &info); err != nil {
		t.Fatalf("testimages: %s.json: %v", p, err)
	}
	info.Name = name
	return info
}

func known(name string) bool { return slices.Contains(Names, name) || slices.Contains(onDemand, name) }

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// buildScript finds build.sh: next to this source file, or under the module
// root found from the working directory.
func buildScript() (string, error) {
	if _, file, _, ok := runtime.Caller(0); ok {
		p := filepath.Join(filepath.Dir(file), "build.sh")
		if fileExists(p) {
			return p, nil
		}
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		p := filepath.Join(dir, "testimages", "build.sh")
		if fileExists(p) && fileExists(filepath.Join(dir, "go.mod")) {
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("cannot find testimages/build.sh")
		}
		dir = parent
	}
}

// FileInfo is what Stat reports about a file inside an image. Like lstat, a
// final symlink is not followed.
type FileInfo struct {
	Mode      uint32 // st_mode: file type bits | setuid/setgid/sticky | permissions
	UID, GID  uint32
	Size      int64
	IsDir     bool
	IsSymlink bool
	Target    string // symlink target, if IsSymlink
}

// Perm is the permission bits including setuid, setgid and sticky (Mode & 07777).
func (fi FileInfo) Perm() uint32 { return fi.Mode & 07777 }

// IsRegular tells whether the file is a regular file.
func (fi FileInfo) IsRegular() bool { return fi.Mode&sIFMT == sIFREG }

const (
	sIFMT   = 0170000
	sIFSOCK = 0140000
	sIFLNK  = 0120000
	sIFREG  = 0100000
	sIFBLK  = 0060000
	sIFDIR  = 0040000
	sIFCHR  = 0020000
	sIFIFO  = 0010000
)

// ReadFile returns the contents of the file at path (absolute, inside the
// filesystem) in partition (1-based; 0 = the whole disk) of the image at
// imagePath, whose format is "raw" or "qcow2" ("" = detect). Symlinks are
// followed as the image's own root would see them. A missing file gives an
// error satisfying errors.Is(err, fs.ErrNotExist). ext2/3/4 is read with
// debugfs, anything else with the verifier VM (see ReadFilesVM).
func ReadFile(t testing.TB, imagePath, format string, partition int, path string) ([]byte, error) {
	t.Helper()
	return oneFile(ReadFiles(t, imagePath, format, partition, path))(path)
}

// ReadFiles is ReadFile for many paths at once (one VM boot for all of them
// when the verifier VM is used). Paths that do not exist are left out of the
// map; any other failure (a directory, a symlink loop, an I/O error) is an error.
func ReadFiles(t testing.TB, imagePath, format string, partition int, paths ...string) (map[string][]byte, error) {
	t.Helper()
	v, err := openView(t, imagePath, format, partition)
	if err != nil {
		return nil, err
	}
	defer v.close()
	if v.fs == "ext" {
		needDebugfs(t)
		return v.debugfsReadFiles(paths)
	}
	return ReadFilesVM(t, imagePath, v.format, partition, paths...)
}

// ReadFileAt reads the file at path in the ext2/3/4 filesystem that starts
// offset bytes into the raw image at imagePath, with debugfs: for
// filesystems that are not partitions, such as LVM volumes (see
// Info.RootOffset). A missing file gives an error satisfying
// errors.Is(err, fs.ErrNotExist).
func ReadFileAt(t testing.TB, imagePath string, offset int64, path string) ([]byte, error) {
	t.Helper()
	v := &view{raw: imagePath, offset: offset, format: "raw"}
	fsType, err := probeFS(v.raw, v.offset)
	if err != nil {
		return nil, err
	}
	if fsType != "ext" && fsType != "ext-recover" {
		return nil, fmt.Errorf("testimages: no ext2/3/4 filesystem at offset %d of %s", offset, imagePath)
	}
	v.fs = fsType
	needDebugfs(t)
	return v.debugfsReadFile(path)
}

// Stat describes path (lstat: a final symlink is not followed) in partition
// of the image; see ReadFile for the arguments. A missing file gives an error
// satisfying errors.Is(err, fs.ErrNotExist).
func Stat(t testing.TB, imagePath, format string, partition int, path string) (FileInfo, error) {
	t.Helper()
	v, err := openView(t, imagePath, format, partition)
	if err != nil {
		return FileInfo{}, err
	}
	defer v.close()
	if v.fs == "ext" {
		needDebugfs(t)
		return v.debugfsLstat(path)
	}
	m, err := StatVM(t, imagePath, v.format, partition, path)
	if err != nil {
		return FileInfo{}, err
	}
	fi, ok := m[path]
	if !ok {
		return FileInfo{}, &fs.PathError{Op: "stat", Path: path, Err: fs.ErrNotExist}
	}
	return fi, nil
}

// ReadFileDebugfs is ReadFile forced to use debugfs (ext2/3/4 only).
func ReadFileDebugfs(t testing.TB, imagePath, format string, partition int, path string) ([]byte, error) {
	t.Helper()
	v, err := openExtView(t, imagePath, format, partition)
	if err != nil {
		return nil, err
	}
	defer v.close()
	return v.debugfsReadFile(path)
}

// StatDebugfs is Stat forced to use debugfs (ext2/3/4 only).
func StatDebugfs(t testing.TB, imagePath, format string, partition int, path string) (FileInfo, error) {
	t.Helper()
	v, err := openExtView(t, imagePath, format, partition)
	if err != nil {
		return FileInfo{}, err
	}
	defer v.close()
	return v.debugfsLstat(path)
}

// openExtView opens a view of an ext2/3/4 filesystem for debugfs.
func openExtView(t testing.TB, imagePath, format string, partition int) (*view, error) {
	t.Helper()
	v, err := openView(t, imagePath, format, partition)
	if err != nil {
		return nil, err
	}
	if v.fs != "ext" && v.fs != "ext-recover" {
		v.close()
		return nil, fmt.Errorf("testimages: partition %d of %s is not ext2/3/4", partition, imagePath)
	}
	needDebugfs(t)
	return v, nil
}

// needDebugfs ends the test (see internal/vmtest) when debugfs, the
// independent ext2/3/4 reader, is missing.
func needDebugfs(t testing.TB) {
	t.Helper()
	vmtest.LookPath(t, "debugfs", "e2fsprogs")
}

// detectFormat returns "qcow2" or "raw" from the file's magic.
func detectFormat(imagePath string) (string, error) {
	f, err := os.Open(imagePath)
	if err != nil {
		return "", err
	}
	defer f.Close()
	var magic [4]byte
	if _, err := io.ReadFull(f, magic[:]); err != nil {
		return "", fmt.Errorf("testimages: reading %s: %w", imagePath, err)
	}
	if bytes.Equal(magic[:], []byte("QFI\xfb")) {
		return "qcow2", nil
	}
	return "raw", nil
}

// view is a raw view of one partition of an image.
type view struct {
	raw    string // raw image file
	offset int64  // byte offset of the partition
	format string // format of the original image
	fs     string // "ext", "ext-recover" (journal needs replay), "xfs", "vfat", "" (unknown)
	tmp    string // temporary raw conversion to remove, if any
}

func (v *view) close() {
	if v.tmp != "" {
		os.Remove(v.tmp)
	}
}

// device is the debugfs device argument: the raw file with its offset.
func (v *view) device() string {
	if v.offset == 0 {
		return v.raw
	}
	return fmt.Sprintf("%s?offset=%d", v.raw, v.offset)
}

func openView(t testing.TB, imagePath, format string, partition int) (*view, error) {
	t.Helper()
	if format == "" {
		var err error
		if format, err = detectFormat(imagePath); err != nil {
			return nil, err
		}
	}
	v := &view{raw: imagePath, format: format}
	switch format {
	case "raw":
	case "qcow2":
		vmtest.LookPath(t, "qemu-img", "qemu-utils")
		v.tmp = filepath.Join(t.TempDir(), "view.raw")
		v.raw = v.tmp
		out, err := exec.Command("qemu-img", "convert", "-f", "qcow2", "-O", "raw", imagePath, v.tmp).CombinedOutput()
		if err != nil {
			v.close()
			return nil, fmt.Errorf("testimages: qemu-img convert %s: %v: %s", imagePath, err, out)
		}
	default:
		return nil, fmt.Errorf("testimages: unsupported image format %q", format)
	}
	if partition > 0 {
		vmtest.LookPath(t, "sfdisk", "fdisk")
		off, err := partitionOffset(v.raw, partition)
		if err != nil {
			v.close()
			return nil, err
		}
		v.offset = off
	}
	fsType, err := probeFS(v.raw, v.offset)
	if err != nil {
		v.close()
		return nil, err
	}
	v.fs = fsType
	return v, nil
}

// sfdiskJSON is the part of `sfdisk -J` output we use.
type sfdiskJSON struct {
	PartitionTable struct {
		Label      string `json:"label"`
		Device     string `json:"device"`
		SectorSize int64  `json:"sectorsize"`
		Partitions []struct {
			Node  string `json:"node"`
			Start int64  `json:"start"`
			Size  int64  `json:"size"`
		} `json:"partitions"`
	} `json:"partitiontable"`
}

// PartitionOffset is the byte offset of partition n (1-based) of the raw
// disk image at raw, read with sfdisk: for tools that take a filesystem at
// an offset (debugfs "IMAGE?offset=N").
func PartitionOffset(t testing.TB, raw string, n int) int64 {
	t.Helper()
	vmtest.LookPath(t, "sfdisk", "fdisk")
	off, err := partitionOffset(raw, n)
	if err != nil {
		t.Fatal(err)
	}
	return off
}

// partitionOffset returns the byte offset of partition n of a raw disk image.
func partitionOffset(raw string, n int) (int64, error) {
	out, err := exec.Command("sfdisk", "-J", raw).Output()
	if err != nil {
		return 0, fmt.Errorf("testimages: sfdisk -J %s: %v", raw, err)
	}
	return parseSfdiskOffset(out, n)
}

func parseSfdiskOffset(out []byte, n int) (int64, error) {
	start, _, err := parseSfdiskPartition(out, n)
	return start, err
}

// parseSfdiskPartition is where partition n lies in bytes, from sfdisk -J.
func parseSfdiskPartition(out []byte, n int) (start, size int64, err error) {
	var j sfdiskJSON
	if err := json.Unmarshal(out, &j); err != nil {
		return 0, 0, fmt.Errorf("testimages: parsing sfdisk -J: %v", err)
	}
	pt := j.PartitionTable
	ss := pt.SectorSize
	if ss == 0 {
		ss = 512
	}
	suffix := fmt.Sprint(n)
	for _, p := range pt.Partitions {
		rest := strings.TrimPrefix(p.Node, pt.Device)
		rest = strings.TrimPrefix(rest, "p") // /dev/loop0p1 style
		if rest == suffix {
			return p.Start * ss, p.Size * ss, nil
		}
	}
	return 0, 0, fmt.Errorf("testimages: no partition %d in %s", n, pt.Device)
}

// probeFS identifies the filesystem at offset of the raw file by its magic.
func probeFS(raw string, offset int64) (string, error) {
	f, err := os.Open(raw)
	if err != nil {
		return "", err
	}
	defer f.Close()
	buf := make([]byte, 4096)
	n, err := f.ReadAt(buf, offset)
	if n < 2048 {
		return "", fmt.Errorf("testimages: reading superblock of %s at %d: %v", raw, offset, err)
	}
	buf = buf[:n]
	switch {
	case buf[1024+56] == 0x53 && buf[1024+57] == 0xef:
		incompat := uint32(buf[1024+0x60]) | uint32(buf[1024+0x61])<<8 | uint32(buf[1024+0x62])<<16 | uint32(buf[1024+0x63])<<24
		if incompat&0x4 != 0 { // EXT3_FEATURE_INCOMPAT_RECOVER: journal not replayed
			return "ext-recover", nil
		}
		return "ext", nil
	case string(buf[0:4]) == "XFSB":
		return "xfs", nil
	case buf[510] == 0x55 && buf[511] == 0xaa && (string(buf[82:85]) == "FAT" || string(buf[54:57]) == "FAT"):
		return "vfat", nil
	}
	return "", nil
}

// debugfsReadFile reads one file with debugfs; a missing one is an error
// satisfying errors.Is(err, fs.ErrNotExist).
func (v *view) debugfsReadFile(path string) ([]byte, error) {
	return oneFile(v.debugfsReadFiles([]string{path}))(path)
}

// oneFile picks path out of a many-file read; a missing one is an error
// satisfying errors.Is(err, fs.ErrNotExist).
func oneFile(m map[string][]byte, err error) func(path string) ([]byte, error) {
	return func(path string) ([]byte, error) {
		if err != nil {
			return nil, err
		}
		data, ok := m[path]
		if !ok {
			return nil, &fs.PathError{Op: "read", Path: path, Err: fs.ErrNotExist}
		}
		return data, nil
	}
}

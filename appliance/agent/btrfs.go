package agent

import (
	"encoding/binary"
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/imgbake/imgbake/appliance/distro"
	"github.com/imgbake/imgbake/appliance/proto"
)

// btrfs subvolumes, listed the way btrfs-progs does it: BTRFS_IOC_TREE_SEARCH
// over the root tree for ROOT_REF items (parent, child, directory, name),
// BTRFS_IOC_INO_LOOKUP for the path of that directory inside the parent,
// and the root tree directory's "default" entry for the default subvolume.
// The search results are data of a hostile image: parsed with bounds checks.

const (
	btrfsIoctlMagic = 0x94
	// _IOWR(0x94, 17, struct btrfs_ioctl_search_args) and
	// _IOWR(0x94, 18, struct btrfs_ioctl_ino_lookup_args), both 4096 bytes.
	btrfsIocTreeSearch = 0xc0000000 | 4096<<16 | btrfsIoctlMagic<<8 | 17
	btrfsIocInoLookup  = 0xc0000000 | 4096<<16 | btrfsIoctlMagic<<8 | 18

	btrfsRootTreeObjectID    = 1
	btrfsRootTreeDirObjectID = 6
	btrfsFSTreeObjectID      = 5 // the top level
	btrfsFirstFreeObjectID   = 256
	btrfsDirItemKey          = 84
	btrfsRootRefKey          = 156

	btrfsSearchKeySize    = 104
	btrfsSearchBufSize    = 4096 - btrfsSearchKeySize
	btrfsSearchHeaderSize = 32
	btrfsRootRefSize      = 18 // dirid, sequence (le64), name_len (le16)
	btrfsDirItemSize      = 30 // location key (17), transid, data_len, name_len, type
	btrfsInoLookupPathMax = 4080
	// maxSubvolumes bounds what one filesystem may make us list and resolve.
	maxSubvolumes = 4096
)

// btrfsSearchKey is struct btrfs_ioctl_search_key.
type btrfsSearchKey struct {
	TreeID, MinObjectID, MaxObjectID, MinOffset, MaxOffset, MinTransID, MaxTransID uint64
	MinType, MaxType, NrItems, unused                                              uint32
	unused1, unused2, unused3, unused4                                             uint64
}

// btrfsSearchArgs is struct btrfs_ioctl_search_args.
type btrfsSearchArgs struct {
	Key btrfsSearchKey
	Buf [btrfsSearchBufSize]byte
}

// btrfsInoLookupArgs is struct btrfs_ioctl_ino_lookup_args.
type btrfsInoLookupArgs struct {
	TreeID, ObjectID uint64
	Name             [btrfsInoLookupPathMax]byte
}

// btrfsItem is one item a tree search returned.
type btrfsItem struct {
	ObjectID, Offset uint64
	Type             uint32
	Data             []byte
}

// parseBtrfsSearch splits a tree search buffer holding n items (struct
// btrfs_ioctl_search_header, then the item) into items; Data aliases buf.
func parseBtrfsSearch(buf []byte, n uint32) ([]btrfsItem, error) {
	items := make([]btrfsItem, 0, min(int(n), len(buf)/btrfsSearchHeaderSize))
	off := 0
	for i := uint32(0); i < n; i++ {
		if len(buf)-off < btrfsSearchHeaderSize {
			return items, fmt.Errorf("tree search: item %d of %d: header past the buffer", i+1, n)
		}
		h := buf[off : off+btrfsSearchHeaderSize]
		it := btrfsItem{
			ObjectID: binary.LittleEndian.Uint64(h[8:]),
			Offset:   binary.LittleEndian.Uint64(h[16:]),
			Type:     binary.LittleEndian.Uint32(h[24:]),
		}
		size := int(binary.LittleEndian.Uint32(h[28:]))
		off += btrfsSearchHeaderSize
		if size < 0 || size > len(buf)-off {
			return items, fmt.Errorf("tree search: item %d of %d: %d bytes past the buffer", i+1, n, size)
		}
		it.Data = buf[off : off+size]
		off += size
		items = append(items, it)
	}
	return items, nil
}

// parseBtrfsRootRef reads a ROOT_REF item: the directory (inode in the
// parent subvolume) holding the child, and the child's name there.
func parseBtrfsRootRef(data []byte) (dirID uint64, name string, err error) {
	if len(data) < btrfsRootRefSize {
		return 0, "", fmt.Errorf("root ref: %d bytes, want at least %d", len(data), btrfsRootRefSize)
	}
	n := int(binary.LittleEndian.Uint16(data[16:]))
	if n == 0 || n > len(data)-btrfsRootRefSize {
		return 0, "", fmt.Errorf("root ref: name of %d bytes in an item of %d", n, len(data))
	}
	name = string(data[btrfsRootRefSize : btrfsRootRefSize+n])
	if err := checkSubvolName(name); err != nil {
		return 0, "", err
	}
	return binary.LittleEndian.Uint64(data), name, nil
}

// parseBtrfsDirItem reads a DIR_ITEM: the object its first entry points to
// and that entry's name.
func parseBtrfsDirItem(data []byte) (target uint64, name string, err error) {
	if len(data) < btrfsDirItemSize {
		return 0, "", fmt.Errorf("dir item: %d bytes, want at least %d", len(data), btrfsDirItemSize)
	}
	n := int(binary.LittleEndian.Uint16(data[27:]))
	if n > len(data)-btrfsDirItemSize {
		return 0, "", fmt.Errorf("dir item: name of %d bytes in an item of %d", n, len(data))
	}
	return binary.LittleEndian.Uint64(data), string(data[btrfsDirItemSize : btrfsDirItemSize+n]), nil
}

// checkSubvolName refuses a name that is no single path component.
func checkSubvolName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return fmt.Errorf("subvolume name %q is not a path component", name)
	}
	return nil
}

// btrfsRef is where one subvolume lies: in directory DirPath (relative,
// "" for the parent's root directory) of subvolume Parent, named Name.
type btrfsRef struct {
	ID, Parent uint64
	DirPath    string
	Name       string
}

// btrfsSubvolPaths resolves each subvolume's path from the top level
// ("root", "@/.snapshots/1/snapshot"). A subvolume whose chain of parents
// does not reach the top level (a cycle, a parent not listed) is left out.
func btrfsSubvolPaths(refs []btrfsRef) map[uint64]string {
	byID := map[uint64]btrfsRef{}
	for _, r := range refs {
		if _, dup := byID[r.ID]; !dup && r.ID != btrfsFSTreeObjectID {
			byID[r.ID] = r
		}
	}
	paths := map[uint64]string{btrfsFSTreeObjectID: ""}
	var resolve func(id uint64, depth int) (string, bool)
	resolve = func(id uint64, depth int) (string, bool) {
		if p, ok := paths[id]; ok {
			return p, true
		}
		r, ok := byID[id]
		if !ok || depth > len(byID) {
			return "", false
		}
		parent, ok := resolve(r.Parent, depth+1)
		if !ok {
			return "", false
		}
		p := path.Join(parent, r.DirPath, r.Name)
		if p == "." || p == "" || strings.HasPrefix(p, "../") || p == ".." {
			return "", false
		}
		paths[id] = p
		return p, true
	}
	out := map[uint64]string{}
	for id := range byID {
		if p, ok := resolve(id, 0); ok {
			out[id] = p
		}
	}
	return out
}

// cleanInoLookupPath turns BTRFS_IOC_INO_LOOKUP's answer ("dir/sub/", or ""
// for the subvolume's root directory) into a relative path, refusing what
// could climb out.
func cleanInoLookupPath(name []byte) (string, error) {
	if i := strings.IndexByte(string(name), 0); i >= 0 {
		name = name[:i]
	}
	p := strings.TrimSuffix(string(name), "/")
	if p == "" {
		return "", nil
	}
	for _, c := range strings.Split(p, "/") {
		if err := checkSubvolName(c); err != nil {
			return "", fmt.Errorf("directory path %q: %w", p, err)
		}
	}
	return p, nil
}

// btrfsTreeSearch returns every item of tree tree with objectid in
// [minObj, maxObj] and type typ, following the kernel's batches.
func btrfsTreeSearch(fd int, tree, minObj, maxObj uint64, typ uint32, limit int) ([]btrfsItem, error) {
	args := new(btrfsSearchArgs)
	args.Key = btrfsSearchKey{TreeID: tree, MinObjectID: minObj, MaxObjectID: maxObj, MaxOffset: ^uint64(0),
		MaxTransID: ^uint64(0), MinType: typ, MaxType: typ}
	var out []btrfsItem
	for {
		args.Key.NrItems = 4096
		if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), btrfsIocTreeSearch, uintptr(unsafe.Pointer(args))); e != 0 {
			return out, fmt.Errorf("BTRFS_IOC_TREE_SEARCH: %w", e)
		}
		n := args.Key.NrItems
		if n == 0 {
			return out, nil
		}
		items, err := parseBtrfsSearch(args.Buf[:], n)
		if err != nil {
			return out, err
		}
		var last btrfsItem
		for _, it := range items {
			last = it
			if it.Type == typ {
				it.Data = append([]byte(nil), it.Data...) // the buffer is reused
				out = append(out, it)
			}
		}
		if len(out) > limit {
			return out, fmt.Errorf("more than %d items", limit)
		}
		// Continue after the last key returned (objectid, type, offset).
		switch {
		case last.Offset < ^uint64(0):
			args.Key.MinObjectID, args.Key.MinOffset = last.ObjectID, last.Offset+1
		case last.ObjectID < maxObj:
			args.Key.MinObjectID, args.Key.MinOffset = last.ObjectID+1, 0
		default:
			return out, nil
		}
		if args.Key.MinObjectID > maxObj {
			return out, nil
		}
	}
}

// btrfsInoLookup is the path of directory dir inside subvolume tree.
func btrfsInoLookup(fd int, tree, dir uint64) (string, error) {
	args := &btrfsInoLookupArgs{TreeID: tree, ObjectID: dir}
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), btrfsIocInoLookup, uintptr(unsafe.Pointer(args))); e != 0 {
		return "", fmt.Errorf("BTRFS_IOC_INO_LOOKUP of directory %d in subvolume %d: %w", dir, tree, e)
	}
	return cleanInoLookupPath(args.Name[:])
}

// btrfsSubvolumes lists the subvolumes of the btrfs filesystem that fd (any
// file or directory on it, O_PATH is not enough) is on, sorted by id, and
// the id of its default subvolume.
func btrfsSubvolumes(fd int) ([]proto.Subvolume, uint64, error) {
	items, err := btrfsTreeSearch(fd, btrfsRootTreeObjectID, btrfsFSTreeObjectID, ^uint64(0), btrfsRootRefKey, maxSubvolumes)
	if err != nil {
		return nil, 0, err
	}
	var refs []btrfsRef
	for _, it := range items {
		dir, name, err := parseBtrfsRootRef(it.Data)
		if err != nil {
			return nil, 0, fmt.Errorf("subvolume %d: %w", it.Offset, err)
		}
		dirPath := ""
		if dir != btrfsFirstFreeObjectID {
			if dirPath, err = btrfsInoLookup(fd, it.ObjectID, dir); err != nil {
				return nil, 0, err
			}
		}
		refs = append(refs, btrfsRef{ID: it.Offset, Parent: it.ObjectID, DirPath: dirPath, Name: name})
	}
	paths := btrfsSubvolPaths(refs)
	var out []proto.Subvolume
	for _, r := range refs {
		if p, ok := paths[r.ID]; ok {
			out = append(out, proto.Subvolume{ID: r.ID, Parent: r.Parent, Path: p})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	def, err := btrfsDefaultSubvolume(fd)
	return out, def, err
}

// btrfsDefaultSubvolume reads the root tree directory's "default" entry,
// the subvolume mounted when no subvol= is given.
func btrfsDefaultSubvolume(fd int) (uint64, error) {
	items, err := btrfsTreeSearch(fd, btrfsRootTreeObjectID, btrfsRootTreeDirObjectID, btrfsRootTreeDirObjectID, btrfsDirItemKey, 64)
	if err != nil {
		return 0, err
	}
	for _, it := range items {
		target, name, err := parseBtrfsDirItem(it.Data)
		if err == nil && name == "default" {
			return target, nil
		}
	}
	return btrfsFSTreeObjectID, nil // no entry: the top level
}

// openForIoctl opens a directory for ioctls (an O_PATH descriptor cannot
// carry them).
func openForIoctl(dirfd int) (int, error) {
	fd, err := unix.Openat(dirfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open for ioctl: %w", err)
	}
	return fd, nil
}

// btrfsOSSubvolume is called with the btrfs filesystem fs mounted at the
// sysroot as its default subvolume. When that holds no OS, the subvolumes
// are scanned for one (as libguestfs inspection does: Fedora's root,
// Ubuntu's @; see osSubvolume) and the one found is mounted at the sysroot
// instead. When none holds one, the default subvolume is mounted again
// for assembleRoot to judge (its OS may name itself only once its fstab
// has mounted /usr), and scanned lists the subvolumes looked at. notRoot
// says why fs holds no OS; the sysroot is unmounted then.
func (a *Agent) btrfsOSSubvolume(fs proto.Filesystem) (notRoot, scanned string) {
	rootfd, err := unix.Open(proto.Sysroot, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		unmountBelow(proto.Sysroot)
		return fmt.Sprintf("cannot be opened: %v", err), ""
	}
	if _, ok := distro.Identify(imageFiles{rootfd}); ok {
		unix.Close(rootfd)
		return "", ""
	}
	subvols, _, err := btrfsSubvolumes(rootfd)
	unix.Close(rootfd)
	if err != nil {
		return "", fmt.Sprintf("which cannot be listed: %v", unwrapErrno(err))
	}
	if len(subvols) == 0 {
		return "", ""
	}
	var names []string
	for _, sv := range subvols {
		names = append(names, sv.Path)
	}
	scanned = strings.Join(names, ", ")
	unmountBelow(proto.Sysroot)
	// back mounts the default subvolume again when no other will do.
	back := func() (string, string) {
		if err := a.mountFS(fs.Device, proto.Sysroot, fs.Type, ""); err != nil {
			return fmt.Sprintf("does not mount again: %v", unwrapErrno(err)), scanned
		}
		return "", scanned
	}
	if err := a.mountFS(fs.Device, proto.Sysroot, fs.Type, "subvolid=5"); err != nil {
		scanned = fmt.Sprintf("not searched: the top level does not mount: %v", unwrapErrno(err))
		return back()
	}
	top, err := unix.Open(proto.Sysroot, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		unmountBelow(proto.Sysroot)
		return back()
	}
	sv, found := osSubvolume(top, subvols)
	unix.Close(top)
	unmountBelow(proto.Sysroot)
	if !found {
		return back()
	}
	if err := a.mountFS(fs.Device, proto.Sysroot, fs.Type, fmt.Sprintf("subvolid=%d", sv.ID)); err != nil {
		return fmt.Sprintf("holds an OS in subvolume %s, which does not mount: %v", sv.Path, unwrapErrno(err)), scanned
	}
	return "", scanned
}

// osSubvolume picks the subvolume holding an OS, top being the top level
// of the filesystem: one whose own fstab mounts it as / wins over others
// (snapshots of it), otherwise the first by id.
func osSubvolume(top int, subvols []proto.Subvolume) (proto.Subvolume, bool) {
	var first *proto.Subvolume
	for i, sv := range subvols {
		fd, err := openInRoot(top, "/"+sv.Path, unix.O_PATH|unix.O_DIRECTORY, 0)
		if err != nil {
			continue
		}
		_, ok := distro.Identify(imageFiles{fd})
		self := ok && mountsItselfAsRoot(fd, sv)
		unix.Close(fd)
		if self {
			return sv, true
		}
		if ok && first == nil {
			first = &subvols[i]
		}
	}
	if first == nil {
		return proto.Subvolume{}, false
	}
	return *first, true
}

// mountsItselfAsRoot reports whether the OS in subvolume sv (its root
// directory at fd) has an fstab whose / entry names sv by subvol= or
// subvolid=.
func mountsItselfAsRoot(fd int, sv proto.Subvolume) bool {
	entries, _ := readFstab(fd)
	for _, e := range entries {
		if path.Clean(e.File) != "/" || e.VFSType != "btrfs" {
			continue
		}
		for _, o := range strings.Split(e.MntOps, ",") {
			if v, ok := strings.CutPrefix(o, "subvol="); ok && strings.Trim(v, "/") == sv.Path {
				return true
			}
			if v, ok := strings.CutPrefix(o, "subvolid="); ok && v == fmt.Sprint(sv.ID) {
				return true
			}
		}
	}
	return false
}

// describeBtrfs records, for the image's btrfs mounts, the subvolume each
// shows, and for each btrfs filesystem mounted its subvolumes and default
// subvolume. What cannot be listed is a warning.
func describeBtrfs(res *proto.MountResult) {
	listed := map[string]bool{}
	for _, m := range mountInfoBelow(proto.Sysroot) {
		if m.fstype != "btrfs" {
			continue
		}
		rel := strings.TrimPrefix(m.mountpoint, proto.Sysroot)
		if rel == "" {
			rel = "/"
		}
		i := slices.IndexFunc(res.Mounts, func(mt proto.Mount) bool { return mt.Mountpoint == rel && mt.Type == "btrfs" })
		if i < 0 {
			continue
		}
		res.Mounts[i].Subvolume = strings.Trim(m.root, "/")
		dev := res.Mounts[i].Device
		if listed[dev] {
			continue
		}
		listed[dev] = true
		j := slices.IndexFunc(res.Filesystems, func(f proto.Filesystem) bool { return f.Device == dev })
		if j < 0 {
			continue
		}
		fd, err := unix.Open(m.mountpoint, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			res.Warnings = append(res.Warnings, fmt.Sprintf("%s: cannot list its btrfs subvolumes: %v", dev, err))
			continue
		}
		subvols, def, err := btrfsSubvolumes(fd)
		unix.Close(fd)
		if err != nil {
			res.Warnings = append(res.Warnings, fmt.Sprintf("%s: cannot list its btrfs subvolumes: %v", dev, unwrapErrno(err)))
			continue
		}
		res.Filesystems[j].Subvolumes = subvols
		for _, sv := range subvols {
			if sv.ID == def {
				res.Filesystems[j].DefaultSubvolume = sv.Path
			}
		}
	}
}

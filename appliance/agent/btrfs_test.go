package agent

import (
	"encoding/binary"
	"maps"
	"path"
	"strings"
	"testing"
)

// searchItem encodes one tree search result: struct
// btrfs_ioctl_search_header and the item.
func searchItem(objectID, offset uint64, typ uint32, data []byte) []byte {
	h := make([]byte, btrfsSearchHeaderSize)
	binary.LittleEndian.PutUint64(h[0:], 7) // transid
	binary.LittleEndian.PutUint64(h[8:], objectID)
	binary.LittleEndian.PutUint64(h[16:], offset)
	binary.LittleEndian.PutUint32(h[24:], typ)
	binary.LittleEndian.PutUint32(h[28:], uint32(len(data)))
	return append(h, data...)
}

// rootRef encodes a btrfs_root_ref item.
func rootRef(dirID uint64, name string) []byte {
	b := make([]byte, btrfsRootRefSize)
	binary.LittleEndian.PutUint64(b, dirID)
	binary.LittleEndian.PutUint64(b[8:], 1)
	binary.LittleEndian.PutUint16(b[16:], uint16(len(name)))
	return append(b, name...)
}

// dirItem encodes a btrfs_dir_item pointing at target.
func dirItem(target uint64, name string) []byte {
	b := make([]byte, btrfsDirItemSize)
	binary.LittleEndian.PutUint64(b, target)
	b[8] = 132 // ROOT_ITEM
	binary.LittleEndian.PutUint16(b[27:], uint16(len(name)))
	b[29] = 2 // a directory
	return append(b, name...)
}

// TestParseBtrfsSearch reads openSUSE's layout as the kernel returns it:
// ROOT_REF items of @, @/.snapshots, @/.snapshots/1/snapshot (in directory
// "1" of @/.snapshots) and @/home, and resolves their paths.
func TestParseBtrfsSearch(t *testing.T) {
	var buf []byte
	buf = append(buf, searchItem(5, 256, btrfsRootRefKey, rootRef(256, "@"))...)
	buf = append(buf, searchItem(256, 257, btrfsRootRefKey, rootRef(256, ".snapshots"))...)
	buf = append(buf, searchItem(256, 259, btrfsRootRefKey, rootRef(256, "home"))...)
	buf = append(buf, searchItem(257, 258, btrfsRootRefKey, rootRef(257, "snapshot"))...)
	items, err := parseBtrfsSearch(buf, 4)
	if err != nil {
		t.Fatal(err)
	}
	dirPaths := map[uint64]string{258: "1"} // what INO_LOOKUP answers for the "1" directory
	var refs []btrfsRef
	for _, it := range items {
		dir, name, err := parseBtrfsRootRef(it.Data)
		if err != nil {
			t.Fatal(err)
		}
		dp := ""
		if it.Offset == 258 {
			dp = dirPaths[258]
		}
		if dir != 256 && dir != 257 {
			t.Errorf("dirid %d", dir)
		}
		refs = append(refs, btrfsRef{ID: it.Offset, Parent: it.ObjectID, DirPath: dp, Name: name})
	}
	got := btrfsSubvolPaths(refs)
	want := map[uint64]string{256: "@", 257: "@/.snapshots", 258: "@/.snapshots/1/snapshot", 259: "@/home"}
	if !maps.Equal(got, want) {
		t.Errorf("paths = %v, want %v", got, want)
	}

	if _, err := parseBtrfsSearch(buf, 5); err == nil {
		t.Error("a count beyond the buffer was accepted")
	}
	if _, err := parseBtrfsSearch(buf[:len(buf)-1], 4); err == nil {
		t.Error("a truncated item was accepted")
	}
}

func TestParseBtrfsRootRefRejects(t *testing.T) {
	for name, data := range map[string][]byte{
		"short":           make([]byte, 10),
		"empty name":      rootRef(256, ""),
		"slash":           rootRef(256, "a/b"),
		"dot-dot":         rootRef(256, ".."),
		"nul":             rootRef(256, "a\x00"),
		"name past end":   rootRef(256, "abc")[:btrfsRootRefSize+2],
		"name len > item": append(rootRef(256, "x")[:16], 0xff, 0xff, 'x'),
	} {
		if _, _, err := parseBtrfsRootRef(data); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestBtrfsDefaultFromDirItem(t *testing.T) {
	target, name, err := parseBtrfsDirItem(dirItem(258, "default"))
	if err != nil || target != 258 || name != "default" {
		t.Errorf("got %d %q %v", target, name, err)
	}
	if _, _, err := parseBtrfsDirItem(dirItem(258, "default")[:btrfsDirItemSize+3]); err == nil {
		t.Error("a truncated name was accepted")
	}
}

// TestBtrfsSubvolPathsHostile: cycles, unknown parents and the top level
// named as a child resolve to nothing, and never hang.
func TestBtrfsSubvolPathsHostile(t *testing.T) {
	got := btrfsSubvolPaths([]btrfsRef{
		{ID: 300, Parent: 301, Name: "a"},
		{ID: 301, Parent: 300, Name: "b"},
		{ID: 302, Parent: 999, Name: "orphan"},
		{ID: 5, Parent: 256, Name: "top"},
		{ID: 256, Parent: 5, Name: "root"},
		{ID: 256, Parent: 5, Name: "again"},
		{ID: 257, Parent: 256, DirPath: "var/lib", Name: "machines"},
	})
	want := map[uint64]string{256: "root", 257: "root/var/lib/machines"}
	if !maps.Equal(got, want) {
		t.Errorf("paths = %v, want %v", got, want)
	}
}

func TestCleanInoLookupPath(t *testing.T) {
	for in, want := range map[string]string{"": "", "1/": "1", "var/lib/\x00junk": "var/lib"} {
		if got, err := cleanInoLookupPath([]byte(in)); err != nil || got != want {
			t.Errorf("%q: got %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"../x/", "a//b/", "a/./b/"} {
		if _, err := cleanInoLookupPath([]byte(in)); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

// FuzzBtrfsSearch parses hostile tree search buffers: no panic, items lie
// inside the buffer, a root ref's name is one path component, and the
// resolved paths are relative, clean and end in their subvolume's name.
func FuzzBtrfsSearch(f *testing.F) {
	seed := append(searchItem(5, 256, btrfsRootRefKey, rootRef(256, "@")),
		searchItem(256, 257, btrfsRootRefKey, rootRef(300, "home"))...)
	f.Add(seed, uint32(2), []byte("sub/dir/"))
	f.Add(searchItem(6, 6, btrfsDirItemKey, dirItem(258, "default")), uint32(1), []byte(""))
	f.Add([]byte{1, 2, 3}, uint32(9), []byte("../"))
	f.Fuzz(func(t *testing.T, buf []byte, n uint32, lookup []byte) {
		if n > 1<<16 {
			n = 1 << 16
		}
		items, _ := parseBtrfsSearch(buf, n)
		var refs []btrfsRef
		total := 0
		for _, it := range items {
			total += btrfsSearchHeaderSize + len(it.Data)
			_, _, _ = parseBtrfsDirItem(it.Data)
			_, name, err := parseBtrfsRootRef(it.Data)
			if err != nil {
				continue
			}
			if name == "" || strings.Contains(name, "/") || name == ".." {
				t.Fatalf("bad name %q accepted", name)
			}
			dp, err := cleanInoLookupPath(lookup)
			if err != nil {
				dp = ""
			}
			refs = append(refs, btrfsRef{ID: it.Offset, Parent: it.ObjectID, DirPath: dp, Name: name})
		}
		if total > len(buf) {
			t.Fatalf("items span %d bytes of a %d-byte buffer", total, len(buf))
		}
		for id, p := range btrfsSubvolPaths(refs) {
			if p == "" || path.Clean(p) != p || path.IsAbs(p) {
				t.Fatalf("subvolume %d: path %q", id, p)
			}
			for _, c := range strings.Split(p, "/") {
				if c == ".." || c == "." {
					t.Fatalf("subvolume %d: path %q", id, p)
				}
			}
		}
	})
}

package testimages

import "testing"

func TestTree(t *testing.T) {
	vmTests(t)
	img := Path(t, "debian-nopart.raw")
	tree, err := Tree(t, img, "raw", 0)
	if err != nil {
		t.Fatal(err)
	}
	want, err := ReadFile(t, img, "raw", 0, "/etc/hostname")
	if err != nil {
		t.Fatal(err)
	}
	if len(tree) < 1000 || tree["/etc"] == "" || tree["/etc/hostname"] == "" {
		t.Fatalf("%d entries; /etc %q, /etc/hostname %q", len(tree), tree["/etc"], tree["/etc/hostname"])
	}
	t.Logf("%d entries; /etc/hostname (%q) %s", len(tree), want, tree["/etc/hostname"])
}

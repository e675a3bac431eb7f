package report

import (
	"fmt"
	"io"

	"github.com/imgbake/imgbake/fsops"
)

// Fstab writes the entries of the image's /etc/fstab with their state
// (`imgbake fstab check`).
func Fstab(w io.Writer, rep *fsops.FstabReport) {
	if !rep.Exists {
		fmt.Fprintln(w, "the image has no /etc/fstab")
		return
	}
	for _, e := range rep.Entries {
		what := e.Device
		if e.FSType != "" {
			what += " (" + e.FSType + ")"
		}
		if e.Note != "" {
			what = e.Note
		}
		fmt.Fprintf(w, "line %-3d %-10s %-45s %-16s %s\n", e.Line, e.Status, SafeName(e.Spec), SafeName(e.Mountpoint), SafeName(what))
	}
}

// FstabFixes writes what `imgbake fstab fix` changed, line by line.
func FstabFixes(w io.Writer, fixes []fsops.FstabFix) {
	for _, f := range fixes {
		fmt.Fprintf(w, "line %d: %s\n", f.Line, f.What)
		if f.New != "" {
			fmt.Fprintf(w, "  - %s\n  + %s\n", SafeName(f.Old), SafeName(f.New))
		}
	}
}

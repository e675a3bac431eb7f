package report

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/dustin/go-humanize"

	"github.com/imgbake/imgbake/bake/layercache"
)

// LayerCache writes the entries of the step-layer cache in dir, most
// recently used first as given, and the size of its layers
// (`imgbake cache ls`).
func LayerCache(out io.Writer, entries []*layercache.Entry, size int64, dir string) {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "KEY\tSTEP\tLAYER\tLAST USED\tINPUT")
	for _, e := range entries {
		layer := "(the input)"
		if e.Layer != "" {
			layer = fmt.Sprintf("%s, %d in chain", humanize.IBytes(uint64(e.LayerSize)), len(e.Chain))
		}
		fmt.Fprintf(w, "%s\t%d %s\t%s\t%s\t%s\n", e.Key[:12], e.Step, SafeName(e.Title), layer,
			e.LastUsed.Local().Format("2006-01-02 15:04"), SafeName(e.BasePath))
	}
	w.Flush()
	fmt.Fprintf(out, "%d entries, layers %s in %s\n", len(entries), humanize.IBytes(uint64(size)), dir)
}

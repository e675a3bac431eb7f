package report

import (
	"fmt"
	"io"

	"github.com/imgbake/imgbake/fsops"
)

// SysprepOperations prints "name * description" lines, as
// virt-sysprep --list-operations does (* for the default set).
func SysprepOperations(w io.Writer) {
	for _, op := range fsops.SysprepOperations {
		mark := " "
		if op.Default {
			mark = "*"
		}
		fmt.Fprintf(w, "%s %s %s\n", op.Name, mark, op.Description)
	}
}

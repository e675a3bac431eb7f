package recipes

import (
	"strings"

	"go.yaml.in/yaml/v3"
)

// Run runs a shell command inside the image with /bin/sh -c.
type Run struct {
	Command string
}

func init() { register("run", decodeRun) }

func (*Run) Kind() string       { return "run" }
func (r *Run) Describe() string { return "run: " + firstLine(r.Command) }

func decodeRun(d *decoder, n *yaml.Node) Op {
	if isNull(n) {
		d.errorf(n, "run: command is empty")
		return nil
	}
	cmd, ok := d.str("run", n)
	switch {
	case !ok:
		return nil
	case strings.TrimSpace(cmd) == "":
		d.errorf(n, "run: command is empty")
	case strings.ContainsRune(cmd, 0):
		// It could not be passed as an argument to sh.
		d.errorf(n, "run: command contains a NUL byte")
	}
	return &Run{Command: cmd}
}

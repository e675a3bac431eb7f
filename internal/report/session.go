package report

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/imgbake/imgbake/session/api"
)

// Sessions writes the table of `imgbake session list`.
func Sessions(w io.Writer, list []api.Status) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tPID\tSTATE\tAGE\tIDLE\tREQUESTS\tOWNER\tDISK")
	for _, s := range list {
		idle := "-"
		if s.IdleMS >= 0 && s.State == api.StateReady {
			idle = (time.Duration(s.IdleMS) * time.Millisecond).Round(time.Second).String()
			if s.Active > 0 {
				idle = "busy"
			}
		}
		owner := "-"
		if s.OwnerPID != 0 {
			owner = strconv.Itoa(s.OwnerPID)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%d\t%s\t%s\n", s.Name, s.PID, s.State,
			time.Since(s.Started).Round(time.Second), idle, s.Requests, owner, strings.Join(s.Disks, ","))
	}
	return tw.Flush()
}

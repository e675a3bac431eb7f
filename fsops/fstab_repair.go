package fsops

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"strings"

	"github.com/imgbake/imgbake/appliance/fstab"
	"github.com/imgbake/imgbake/appliance/proto"
)

// FstabBackup is where FixFstab keeps the file it replaced.
const FstabBackup = "/etc/fstab.imgbake-bak"

// FstabFix is one change FixFstab made (or would make).
type FstabFix struct {
	Line int
	Old  string
	New  string
	What string
}

// FstabProblems returns the entries of a report whose device is missing.
func FstabProblems(rep *proto.FstabReport) []proto.FstabEntry {
	var out []proto.FstabEntry
	if rep == nil {
		return nil
	}
	for _, e := range rep.Entries {
		if e.Status == proto.FstabMissing {
			out = append(out, e)
		}
	}
	return out
}

// FixFstab repairs the entries of /etc/fstab whose device is missing: the
// entry for / is pointed at the root filesystem that was found (by UUID),
// every other one is commented out or, with nofail, gets the nofail option
// so a boot no longer waits for it. The old file is kept as FstabBackup.
// Nothing is written when there is nothing to fix.
func FixFstab(ctx context.Context, s Session, rep *proto.FstabReport, root proto.Filesystem, nofail bool) (Result, []FstabFix, error) {
	problems := FstabProblems(rep)
	if len(problems) == 0 {
		return Result{Detail: "nothing to fix"}, nil, nil
	}
	real, exists, err := resolveFile(ctx, s, "/etc/fstab")
	if err != nil {
		return Result{}, nil, err
	}
	if !exists {
		return Result{}, nil, fmt.Errorf("/etc/fstab disappeared")
	}
	st, err := s.Stat(ctx, real)
	if err != nil {
		return Result{}, nil, err
	}
	data, err := ReadFile(ctx, s, real, maxEditSize)
	if err != nil {
		return Result{}, nil, err
	}
	out, fixes, err := fixFstabText(data, problems, root, nofail)
	if err != nil {
		return Result{}, nil, err
	}
	if len(fixes) == 0 {
		return Result{Detail: "nothing to fix"}, nil, nil
	}
	mode := fs.FileMode(st.Mode).Perm()
	if _, err := WriteFile(ctx, s, FstabBackup, bytes.NewReader(data), WriteOptions{Mode: &mode}); err != nil {
		return Result{}, nil, fmt.Errorf("writing the backup %s: %w", FstabBackup, err)
	}
	res, err := WriteFile(ctx, s, real, bytes.NewReader(out), WriteOptions{})
	if err != nil {
		return res, nil, err
	}
	res.Detail = fmt.Sprintf("%d entr%s fixed, old file kept as %s", len(fixes), map[bool]string{true: "y", false: "ies"}[len(fixes) == 1], FstabBackup)
	return res, fixes, nil
}

// fixFstabText edits the lines of the problem entries. Each problem's line
// must still hold that entry (same spec and mountpoint).
func fixFstabText(data []byte, problems []proto.FstabEntry, root proto.Filesystem, nofail bool) ([]byte, []FstabFix, error) {
	lines := strings.Split(string(data), "\n")
	var fixes []FstabFix
	for _, p := range problems {
		i := p.Line - 1
		if i < 0 || i >= len(lines) {
			return nil, nil, fmt.Errorf("/etc/fstab line %d: no such line", p.Line)
		}
		line := strings.TrimSuffix(lines[i], "\r")
		e, ok := fstab.ParseLine(line)
		if !ok || e.Spec != p.Spec || e.File != p.Mountpoint {
			return nil, nil, fmt.Errorf("/etc/fstab line %d no longer holds %s %s", p.Line, p.Spec, p.Mountpoint)
		}
		fix := FstabFix{Line: p.Line, Old: line}
		switch {
		case p.Mountpoint == "/" && root.UUID != "":
			fix.New = line[:e.Spans[0][0]] + "UUID=" + root.UUID + line[e.Spans[0][1]:]
			fix.What = fmt.Sprintf("/ now names the root filesystem found (%s, UUID=%s)", root.Device, root.UUID)
		case p.Mountpoint == "/":
			// Commenting out / would leave the root read-only at boot.
			fix.What = "left as is: the root filesystem found has no UUID to name"
		case nofail:
			if len(e.Spans) < 4 {
				fix.New = line + " defaults,nofail"
			} else {
				if fstab.HasOption(e.MntOps, "nofail") {
					fix.What = "left as is: already nofail"
					break
				}
				fix.New = line[:e.Spans[3][1]] + ",nofail" + line[e.Spans[3][1]:]
			}
			fix.What = "added nofail: the boot no longer waits for " + p.Spec
		default:
			fix.New = "# imgbake: device not found: " + line
			fix.What = "commented out: " + p.Spec + " is not in the image"
		}
		if fix.New == "" {
			fixes = append(fixes, fix)
			continue
		}
		if strings.HasSuffix(lines[i], "\r") {
			lines[i] = fix.New + "\r"
		} else {
			lines[i] = fix.New
		}
		fixes = append(fixes, fix)
	}
	changed := 0
	for _, f := range fixes {
		if f.New != "" {
			changed++
		}
	}
	if changed == 0 {
		return data, fixes, nil
	}
	return []byte(strings.Join(lines, "\n")), fixes, nil
}

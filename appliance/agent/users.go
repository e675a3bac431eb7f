package agent

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// resolveOwner turns "user[:group]" into ids using the image's own
// /etc/passwd and /etc/group (never the appliance's). A user without a
// group gets the user's primary group.
func (a *Agent) resolveOwner(owner string) (int, int, error) {
	userPart, groupPart, hasGroup := strings.Cut(owner, ":")
	uid, gid := -1, -1
	if n, err := strconv.Atoi(userPart); err == nil {
		uid = n
	} else {
		ent, err := a.lookupDB("/etc/passwd", userPart)
		if err != nil {
			return 0, 0, fmt.Errorf("owner %q: %w", owner, err)
		}
		if uid, err = strconv.Atoi(ent[2]); err != nil {
			return 0, 0, fmt.Errorf("owner %q: bad uid in /etc/passwd", owner)
		}
		if !hasGroup {
			if gid, err = strconv.Atoi(ent[3]); err != nil {
				return 0, 0, fmt.Errorf("owner %q: bad gid in /etc/passwd", owner)
			}
		}
	}
	if hasGroup {
		if n, err := strconv.Atoi(groupPart); err == nil {
			gid = n
		} else {
			ent, err := a.lookupDB("/etc/group", groupPart)
			if err != nil {
				return 0, 0, fmt.Errorf("owner %q: %w", owner, err)
			}
			if gid, err = strconv.Atoi(ent[2]); err != nil {
				return 0, 0, fmt.Errorf("owner %q: bad gid in /etc/group", owner)
			}
		}
	} else if gid < 0 {
		gid = uid
	}
	return uid, gid, nil
}

// lookupDB finds name in a colon-separated database file of the image.
func (a *Agent) lookupDB(file, name string) ([]string, error) {
	data, err := a.readImageFile(file, 4<<20)
	if err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Split(sc.Text(), ":")
		if len(f) >= 4 && f[0] == name {
			return f, nil
		}
	}
	return nil, fmt.Errorf("no %q in the image's %s", name, file)
}

// readImageFile reads a small file of the mounted image, resolved in root.
func (a *Agent) readImageFile(p string, limit int64) ([]byte, error) {
	rootfd, err := a.root()
	if err != nil {
		return nil, err
	}
	return readFileAt(rootfd, p, limit)
}

func readFileAt(rootfd int, p string, limit int64) ([]byte, error) {
	fd, err := openInRoot(rootfd, p, unix.O_RDONLY, 0)
	if err != nil {
		return nil, &pathError{"open", p, err}
	}
	f := fileFromFD(fd, p)
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, limit))
}

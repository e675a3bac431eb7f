package agent

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/imgbake/imgbake/appliance/passwd"
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
		u, err := lookupDB(a, passwd.PasswdFile, userPart, passwd.LookupUser)
		if err != nil {
			return 0, 0, fmt.Errorf("owner %q: %w", owner, err)
		}
		uid = u.UID
		if !hasGroup {
			gid = u.GID
		}
	}
	if hasGroup {
		if n, err := strconv.Atoi(groupPart); err == nil {
			gid = n
		} else {
			g, err := lookupDB(a, passwd.GroupFile, groupPart, passwd.LookupGroup)
			if err != nil {
				return 0, 0, fmt.Errorf("owner %q: %w", owner, err)
			}
			gid = g.GID
		}
	} else if gid < 0 {
		gid = uid
	}
	return uid, gid, nil
}

// lookupDB finds name in an account database file of the image.
func lookupDB[T any](a *Agent, file, name string, lookup func([]byte, string) (T, error)) (T, error) {
	var zero T
	data, err := a.readImageFile(file, 4<<20)
	if err != nil {
		return zero, err
	}
	v, err := lookup(data, name)
	switch {
	case errors.Is(err, passwd.ErrNotFound):
		return zero, fmt.Errorf("no %q in the image's %s", name, file)
	case err != nil:
		return zero, fmt.Errorf("the image's %s %w", file, err)
	}
	return v, nil
}

// readImageFile reads a small file of the mounted image, resolved in root.
func (a *Agent) readImageFile(p string, limit int64) ([]byte, error) {
	rootfd, err := a.root()
	if err != nil {
		return nil, err
	}
	return readFileAt(rootfd, p, limit)
}

// readFileAt reads at most limit bytes of the regular file p of the image
// rooted at rootfd. Anything else is refused before it is opened for
// reading: an image's FIFO would block the agent, and its device node
// would open one of the appliance's devices.
func readFileAt(rootfd int, p string, limit int64) ([]byte, error) {
	pfd, st, err := openPathInRoot(rootfd, p)
	if err != nil {
		return nil, err
	}
	defer unix.Close(pfd)
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, &pathError{"read", p, unix.EINVAL}
	}
	fd, err := unix.Open(fdLink(pfd), unix.O_RDONLY|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &pathError{"open", p, err}
	}
	f := fileFromFD(fd, p)
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, limit))
}

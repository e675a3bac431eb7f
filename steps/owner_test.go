package steps

import (
	"os"
	"syscall"
)

func statOwner(p string) (int, int, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return 0, 0, err
	}
	st := fi.Sys().(*syscall.Stat_t)
	return int(st.Uid), int(st.Gid), nil
}

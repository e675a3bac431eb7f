package appliance

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// Concurrent starts of one machine with no snapshot yet (imgbake bake's
// jobs, or several imgbake processes on one cache) take turns saving it:
// the first boots and saves, the others wait for its lock and restore what
// it saved. Without this each cold-booted and saved its own copy on the
// same cores (measured on 2 cores: 4 jobs' first bake 12–190 s instead of
// ~10 s warm, the saves of all but one thrown away).

// lockPoll is how often a waiting start retries the lock; it also bounds
// how late it sees its context cancelled.
const lockPoll = 50 * time.Millisecond

// saveOnce runs save unless path exists, checking again under an exclusive
// lock on path+".lock" so that one start saves and the others wait for it.
// waiting, if not nil, is called once when the lock is held by another.
// saved reports whether this call ran save.
func saveOnce(ctx context.Context, path string, waiting func(), save func() error) (saved bool, err error) {
	if _, err := os.Stat(path); err == nil {
		return false, nil
	}
	unlock, err := lockWait(ctx, path+".lock", waiting)
	if err != nil {
		return false, err
	}
	defer unlock()
	if _, err := os.Stat(path); err == nil {
		return false, nil // saved by the start that held the lock
	}
	return true, save()
}

// lockWait takes an exclusive flock on path (created private if missing),
// waiting for it until ctx ends. The file stays after unlock: removing it
// would race with a waiter that has it open.
func lockWait(ctx context.Context, path string, waiting func()) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening lock %s: %w", path, err)
	}
	fd := int(f.Fd())
	for {
		err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() {
				_ = unix.Flock(fd, unix.LOCK_UN)
				f.Close()
			}, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", path, err)
		}
		if waiting != nil {
			waiting()
			waiting = nil
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("waiting for another start to save the appliance (%s): %w", path, ctx.Err())
		case <-time.After(lockPoll):
		}
	}
}

package agent

import (
	"errors"
	"sync"
	"syscall"
)

// As PID 1 the agent inherits every orphan in the appliance, so it must reap
// all children. exec.Cmd.Wait would race with a wait4(-1) loop for the same
// pid; instead every child we start registers its pid and the single reaper
// hands its status over.
type reaper struct {
	mu      sync.Mutex
	waiters map[int]chan syscall.WaitStatus
	// exited holds statuses of registered-too-late pids (the child exited
	// between fork and register).
	exited          map[int]syscall.WaitStatus
	startInProgress int
	// ownOnly: not PID 1 (in-process tests). Wait for our own children
	// only; a wait4(-1) loop would steal the exit status of every other
	// child of the process (qemu, openssl, ...).
	ownOnly bool
}

func newReaper() *reaper {
	r := &reaper{
		waiters: map[int]chan syscall.WaitStatus{},
		exited:  map[int]syscall.WaitStatus{},
	}
	return r
}

// run reaps children forever; notify is called on SIGCHLD.
func (r *reaper) run(sigchld <-chan struct{}) {
	for range sigchld {
		r.reapAll()
	}
}

func (r *reaper) reapAll() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if pid <= 0 || err != nil {
			return
		}
		r.mu.Lock()
		if ch, ok := r.waiters[pid]; ok {
			delete(r.waiters, pid)
			ch <- ws
		} else if r.pending(pid) {
			r.exited[pid] = ws
		}
		r.mu.Unlock()
	}
}

// pending reports whether pid belongs to a start in progress; only then is
// its status kept, so orphans' statuses do not accumulate.
func (r *reaper) pending(int) bool { return r.startInProgress > 0 }

// start runs fn (which forks a child and returns its pid) so that the
// child's exit status cannot be lost, and returns a channel that receives it.
func (r *reaper) start(fn func() (int, error)) (int, <-chan syscall.WaitStatus, error) {
	if r.ownOnly {
		pid, err := fn()
		if err != nil {
			return 0, nil, err
		}
		ch := make(chan syscall.WaitStatus, 1)
		go func() {
			var ws syscall.WaitStatus
			for {
				if _, err := syscall.Wait4(pid, &ws, 0, nil); !errors.Is(err, syscall.EINTR) {
					break
				}
			}
			ch <- ws
		}()
		return pid, ch, nil
	}
	r.mu.Lock()
	r.startInProgress++
	r.mu.Unlock()
	pid, err := fn()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.startInProgress--
	if err != nil {
		return 0, nil, err
	}
	ch := make(chan syscall.WaitStatus, 1)
	if ws, ok := r.exited[pid]; ok {
		delete(r.exited, pid)
		ch <- ws
	} else {
		r.waiters[pid] = ch
	}
	if r.startInProgress == 0 {
		clear(r.exited)
	}
	return pid, ch, nil
}

package appliance

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Concurrent starts with no snapshot: exactly one saves, the others wait
// and find its snapshot, and each waiter is told it waits.
func TestSaveOnceConcurrentStartsSaveOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "snapshot-x")
	var saves, waits atomic.Int32
	save := func() error {
		saves.Add(1)
		time.Sleep(200 * time.Millisecond) // a save takes a while: the others must find the lock held
		return os.Mkdir(path, 0o700)
	}
	const starts = 4
	var wg sync.WaitGroup
	saved := make([]bool, starts)
	errs := make([]error, starts)
	for i := range starts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			saved[i], errs[i] = saveOnce(context.Background(), path, func() { waits.Add(1) }, save)
		}()
	}
	wg.Wait()
	n := 0
	for i := range starts {
		if errs[i] != nil {
			t.Fatalf("start %d: %v", i, errs[i])
		}
		if saved[i] {
			n++
		}
	}
	if saves.Load() != 1 || n != 1 {
		t.Fatalf("save ran %d times, %d starts report saving; want 1 and 1", saves.Load(), n)
	}
	if waits.Load() < 1 || waits.Load() > starts-1 {
		t.Fatalf("%d starts were told they wait; want 1..%d", waits.Load(), starts-1)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("no snapshot after the starts: %v", err)
	}
}

// A snapshot already there: no lock is taken, nothing saved.
func TestSaveOnceExistingSnapshot(t *testing.T) {
	path := filepath.Join(t.TempDir(), "snapshot-x")
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	saved, err := saveOnce(context.Background(), path, nil, func() error { t.Fatal("save called"); return nil })
	if err != nil || saved {
		t.Fatalf("saveOnce = %v, %v; want false, nil", saved, err)
	}
	if _, err := os.Stat(path + ".lock"); !os.IsNotExist(err) {
		t.Fatalf("lock file made although the snapshot existed (stat: %v)", err)
	}
}

// The holder's save fails: the waiter saves itself rather than restoring
// nothing, and the holder's error is its own.
func TestSaveOnceFailedSaveLetsTheNextTry(t *testing.T) {
	path := filepath.Join(t.TempDir(), "snapshot-x")
	boom := errors.New("qemu died")
	holding := make(chan struct{})
	release := make(chan struct{})
	first := make(chan error, 1)
	go func() {
		_, err := saveOnce(context.Background(), path, nil, func() error {
			close(holding)
			<-release
			return boom
		})
		first <- err
	}()
	<-holding
	second := make(chan error, 1)
	var secondSaved atomic.Bool
	go func() {
		saved, err := saveOnce(context.Background(), path, nil, func() error { return os.Mkdir(path, 0o700) })
		secondSaved.Store(saved)
		second <- err
	}()
	time.Sleep(3 * lockPoll)
	close(release)
	if err := <-first; !errors.Is(err, boom) {
		t.Fatalf("first start: %v; want its own save error", err)
	}
	if err := <-second; err != nil || !secondSaved.Load() {
		t.Fatalf("second start: saved %v, %v; want it to save after the failure", secondSaved.Load(), err)
	}
}

// A start waiting for the lock stops when its context ends, naming why.
func TestSaveOnceWaitCancelled(t *testing.T) {
	path := filepath.Join(t.TempDir(), "snapshot-x")
	unlock, err := lockWait(context.Background(), path+".lock", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 3*lockPoll)
	defer cancel()
	start := time.Now()
	_, err = saveOnce(ctx, path, nil, func() error { t.Fatal("save called without the lock"); return nil })
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("saveOnce = %v; want the context's deadline", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("cancelled wait took %s", took)
	}
}

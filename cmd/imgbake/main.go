// Command imgbake customizes virtual-machine disk images offline.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() { os.Exit(realMain(os.Args)) }

// realMain turns SIGINT/SIGTERM into a cancelled context: the current step
// is stopped, the appliance shut down, the overlay discarded, and the exit
// code says which signal it was.
func realMain(args []string) int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		sig := <-sigs
		caughtSignal.Store(sig)
		cancel()
		// A second signal while shutting down: give up at once (qemu dies
		// with us through its parent-death signal).
		<-sigs
		os.Exit(exitForSignal(sig))
	}()
	return Execute(ctx, Stdio{In: os.Stdin, Out: os.Stdout, Err: os.Stderr}, args)
}

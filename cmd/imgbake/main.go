// Command imgbake customizes virtual-machine disk images offline.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, cancel := context.WithCancel(context.Background())
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
	os.Exit(Execute(ctx, Stdio{In: os.Stdin, Out: os.Stdout, Err: os.Stderr}, os.Args))
}

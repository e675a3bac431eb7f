package main

import (
	"os"
	"testing"
)

// TestMain lets tests run the test binary as the imgbake command itself
// (IMGBAKE_TEST_AS_MAIN=1), for signal and crash tests that need a real
// separate process.
func TestMain(m *testing.M) {
	if os.Getenv("IMGBAKE_TEST_AS_MAIN") == "1" {
		os.Exit(realMain(append([]string{"imgbake"}, os.Args[1:]...)))
	}
	os.Exit(m.Run())
}

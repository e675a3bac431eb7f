package bake

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/imgbake/imgbake/image"
)

// TestTerminalProgressOnPty converts an image with qemu-img, its progress
// drawn on a real pseudo-terminal: the bar is drawn as it goes, reaches
// 100 % and ends its line.
func TestTerminalProgressOnPty(t *testing.T) {
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Fatalf("qemu-img (package qemu-utils) is needed: %v", err)
	}
	dir := t.TempDir()
	base := filepath.Join(dir, "base.raw")
	// Data spread over the disk, so the conversion has something to report.
	f, err := os.Create(base)
	if err != nil {
		t.Fatal(err)
	}
	chunk := bytes.Repeat([]byte("imgbake!"), 64<<10/8)
	for off := int64(0); off < 64<<20; off += 1 << 20 {
		if _, err := f.WriteAt(chunk, off); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ov, err := image.NewOverlay(ctx, dir, base, "raw")
	if err != nil {
		t.Fatal(err)
	}

	master, tty, err := pty.Open()
	if err != nil {
		t.Fatalf("opening a pty: %v", err)
	}
	defer master.Close()
	drawn := make(chan []byte)
	go func() {
		b, err := io.ReadAll(master)
		if err != nil && !errors.Is(err, syscall.EIO) { // EIO: the terminal side closed
			t.Errorf("reading the pty: %v", err)
		}
		drawn <- b
	}()
	progress := NewTerminalProgress(tty)
	dest := filepath.Join(dir, "out.qcow2")
	out := image.Output{Format: "qcow2", Progress: func(pct float64) { progress("writing out.qcow2", pct) }}
	if err := ov.Export(ctx, dest, out); err != nil {
		t.Fatal(err)
	}
	tty.Close()
	var b []byte
	select {
	case b = <-drawn:
	case <-time.After(30 * time.Second):
		t.Fatal("the pty never closed")
	}
	text := string(b)
	// Each redraw starts over with a carriage return; the last one is full.
	frames := strings.Split(strings.TrimRight(text, "\r\n"), "\r")
	bar := regexp.MustCompile(`writing out\.qcow2\s+(\d+)% \|[^|]*\|`)
	var percents []string
	for _, fr := range frames {
		if m := bar.FindStringSubmatch(fr); m != nil {
			percents = append(percents, m[1])
		}
	}
	if len(percents) < 2 || percents[len(percents)-1] != "100" {
		t.Fatalf("want a bar drawn more than once and ending at 100 %%, got %q from\n%q", percents, text)
	}
	if !strings.HasSuffix(text, "\n") {
		t.Errorf("the finished bar does not end its line: %q", text)
	}
	if _, err := os.Stat(dest); err != nil {
		t.Errorf("the conversion wrote nothing: %v", err)
	}
}

// TestJSONProgress: --json progress stays one event per line.
func TestJSONProgress(t *testing.T) {
	var buf bytes.Buffer
	p := NewJSONProgress(&buf)
	p("writing x.qcow2", 12.5)
	p("writing x.qcow2", 100)
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2: %q", len(lines), buf.String())
	}
	var ev struct {
		Event, Phase string
		Percent      float64
		Time         time.Time
	}
	if err := json.Unmarshal([]byte(lines[0]), &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Event != "progress" || ev.Phase != "writing x.qcow2" || ev.Percent != 12.5 || ev.Time.IsZero() {
		t.Errorf("event %+v", ev)
	}
}

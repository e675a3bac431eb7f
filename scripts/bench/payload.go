package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
)

// The copy-in payload (workload 5): one 256 MiB file of random bytes and
// about 7,000 small files laid out like a source tree. It is generated once,
// deterministically, into the cache and reused; a marker records what it is.
const (
	payloadVersion  = 1
	payloadBigBytes = 256 << 20
	payloadFiles    = 7000
)

type payloadInfo struct {
	Version int    `json:"version"`
	Dir     string `json:"dir"`
	Files   int    `json:"files"` // regular files, the big one included
	Dirs    int    `json:"dirs"`
	Bytes   int64  `json:"bytes"`
}

func (p payloadInfo) MB() float64 { return float64(p.Bytes) / 1e6 }

func ensurePayload(cacheDir string) (payloadInfo, error) {
	dir := filepath.Join(cacheDir, fmt.Sprintf("payload-v%d", payloadVersion))
	marker := filepath.Join(dir, ".bench-payload.json")
	if b, err := os.ReadFile(marker); err == nil {
		var p payloadInfo
		if json.Unmarshal(b, &p) == nil && p.Version == payloadVersion {
			p.Dir = filepath.Join(dir, "payload")
			return p, nil
		}
	}
	logf("generating the copy-in payload in %s (once)", dir)
	if err := os.RemoveAll(dir); err != nil {
		return payloadInfo{}, err
	}
	tmp := dir + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return payloadInfo{}, err
	}
	root := filepath.Join(tmp, "payload")
	if err := os.MkdirAll(root, 0o755); err != nil {
		return payloadInfo{}, err
	}
	p := payloadInfo{Version: payloadVersion}
	rng := rand.New(rand.NewChaCha8([32]byte{'i', 'm', 'g', 'b', 'a', 'k', 'e'}))

	// The big file: incompressible.
	if err := writeRandomFile(filepath.Join(root, "big.bin"), payloadBigBytes, rng); err != nil {
		return p, err
	}
	p.Files++
	p.Bytes += payloadBigBytes

	// The tree: 50 packages × 10 subdirectories × 14 files, sizes log-normal
	// around 3 KiB (median), capped at 256 KiB, like a source tree.
	words := []string{"func", "return", "if", "err", "nil", "for", "range", "package", "import", "type",
		"struct", "int", "string", "var", "const", "map", "go", "defer", "select", "case", "{", "}", "(", ")"}
	line := make([]byte, 0, 128)
	for pkg := 0; pkg < 50; pkg++ {
		for sub := 0; sub < 10; sub++ {
			d := filepath.Join(root, "src", fmt.Sprintf("pkg%02d", pkg), fmt.Sprintf("sub%d", sub))
			if err := os.MkdirAll(d, 0o755); err != nil {
				return p, err
			}
			for f := 0; f < payloadFiles/500; f++ {
				size := int(math.Exp(math.Log(3072) + rng.NormFloat64()))
				if size > 256<<10 {
					size = 256 << 10
				}
				fh, err := os.Create(filepath.Join(d, fmt.Sprintf("file%02d.go", f)))
				if err != nil {
					return p, err
				}
				bw := bufio.NewWriter(fh)
				n := 0
				for n < size {
					line = line[:0]
					for len(line) < 60 {
						line = append(line, words[rng.IntN(len(words))]...)
						line = append(line, ' ')
					}
					line = append(line, '\n')
					if n+len(line) > size {
						line = line[:size-n]
					}
					bw.Write(line)
					n += len(line)
				}
				if err := bw.Flush(); err != nil {
					fh.Close()
					return p, err
				}
				if err := fh.Close(); err != nil {
					return p, err
				}
				p.Files++
				p.Bytes += int64(size)
			}
		}
	}
	err := filepath.WalkDir(root, func(_ string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			p.Dirs++
		}
		return err
	})
	if err != nil {
		return p, err
	}
	b, _ := json.MarshalIndent(p, "", "  ")
	if err := os.WriteFile(filepath.Join(tmp, ".bench-payload.json"), b, 0o644); err != nil {
		return p, err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return p, err
	}
	p.Dir = filepath.Join(dir, "payload")
	return p, nil
}

func writeRandomFile(path string, n int64, rng *rand.Rand) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	for n > 0 {
		for i := 0; i+8 <= len(buf); i += 8 {
			v := rng.Uint64()
			buf[i], buf[i+1], buf[i+2], buf[i+3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
			buf[i+4], buf[i+5], buf[i+6], buf[i+7] = byte(v>>32), byte(v>>40), byte(v>>48), byte(v>>56)
		}
		w := int64(len(buf))
		if w > n {
			w = n
		}
		if _, err := f.Write(buf[:w]); err != nil {
			f.Close()
			return err
		}
		n -= w
	}
	return f.Close()
}

// smallTree writes the handful of application files the realistic recipe
// (workload 4) copies in.
func smallTree(dir string) error {
	files := map[string]string{
		"app/bin/app.sh":        "#!/bin/sh\necho app running\n",
		"app/lib/util.sh":       "util() { :; }\n",
		"app/share/README":      "The benchmark application.\n",
		"app/share/LICENSE":     "Public domain.\n",
		"app/etc/defaults.conf": "port = 8080\nworkers = 4\n",
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// copySparse copies an image sparsely with cp(1), which knows how to skip holes.
func copySparse(src, dst string) error {
	return runQuiet("cp", "--sparse=always", src, dst)
}

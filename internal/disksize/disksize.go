// Package disksize reads disk sizes as users write them: "20G", "+10G",
// "512MiB", in powers of 1024 as qemu-img counts.
package disksize

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Parse reads spec: absolute ("20G") or, with a leading "+", that much more
// than current. K, M, G and T are powers of 1024 ("GiB" and "GB" mean the
// same here); a plain number is bytes. The result is rounded up to a whole
// 512-byte sector.
func Parse(spec string, current int64) (int64, error) {
	s := strings.TrimSpace(spec)
	relative := strings.HasPrefix(s, "+")
	s = strings.TrimPrefix(s, "+")
	upper := strings.TrimSuffix(strings.TrimSuffix(strings.ToUpper(s), "IB"), "B")
	mult := int64(1)
	if n := len(upper); n > 0 {
		switch upper[n-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		case 'T':
			mult = 1 << 40
		}
		if mult > 1 {
			upper = upper[:n-1]
		}
	}
	v, err := strconv.ParseFloat(upper, 64)
	if err != nil || v <= 0 || math.IsInf(v, 0) || math.IsNaN(v) || v*float64(mult) > math.MaxInt64/2 {
		return 0, fmt.Errorf("size %q: expected e.g. 20G or +10G", spec)
	}
	n := int64(math.Ceil(v * float64(mult)))
	if relative {
		n += current
	}
	return (n + 511) / 512 * 512, nil
}

// IsRelative reports whether spec is a "+N" size.
func IsRelative(spec string) bool { return strings.HasPrefix(strings.TrimSpace(spec), "+") }

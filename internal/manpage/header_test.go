package manpage

import (
	"testing"
	"time"
)

func TestNewHeader(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	h, err := NewHeader("imgbake 1.0", "", now)
	if err != nil || !h.Date.Equal(now) || h.Source != "imgbake 1.0" {
		t.Errorf("no SOURCE_DATE_EPOCH: %+v, %v; want the current time", h, err)
	}
	h, err = NewHeader("imgbake 1.0", "1700000000", now)
	if err != nil || h.Date.Unix() != 1700000000 {
		t.Errorf("SOURCE_DATE_EPOCH=1700000000: %+v, %v", h, err)
	}
	if _, err := NewHeader("imgbake 1.0", "yesterday", now); err == nil || err.Error() != `SOURCE_DATE_EPOCH="yesterday": not a number of seconds` {
		t.Errorf("SOURCE_DATE_EPOCH=yesterday: %v", err)
	}
}

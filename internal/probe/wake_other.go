//go:build !linux

package probe

import "time"

// sleepExactly sleeps for d.
func sleepExactly(d time.Duration) { time.Sleep(d) }

// ShortSlices does nothing outside Linux.
func ShortSlices(time.Duration) (int, error) { return 0, nil }

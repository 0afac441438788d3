package explain

import (
	"errors"
	"regexp"
	"strings"

	"github.com/hinomi/hinomi/internal/storage"
)

var reMdstatArray = regexp.MustCompile(`(?m)^\s*md[\w/]+\s*:\s*(?:active|inactive)\b`)

// Mdstat reads /proc/mdstat (Linux software RAID).
var Mdstat = Format{
	Name:    "mdstat",
	Command: "cat /proc/mdstat",
	Detect: func(in *Input) int {
		switch {
		case reMdstatArray.MatchString(in.Text):
			return 95
		case strings.Contains(in.Text, "Personalities :") || strings.Contains(in.Command, "/proc/mdstat"):
			return 80
		}
		return 0
	},
	Explain: func(in *Input) (Result, error) {
		arrays, _ := storage.ParseMdstat([]byte(in.Text))
		if len(arrays) == 0 {
			if strings.Contains(in.Text, "Personalities") {
				return Result{Notes: []string{"/proc/mdstat lists no array."}}, nil
			}
			return Result{}, errors.New("no md array line (\"md0 : active ...\") in the text")
		}
		return Result{Findings: storage.DiagnoseMD(arrays, "/proc/mdstat")}, nil
	},
}

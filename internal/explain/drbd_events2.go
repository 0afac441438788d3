package explain

import (
	"errors"
	"regexp"
	"strings"

	"github.com/hinomi/hinomi/internal/storage"
)

var reEvents2 = regexp.MustCompile(`(?m)^(?:\S+T\S+ )?(?:exists|change|create) (?:resource|connection|device|peer-device) name:`)

// DRBDEvents2 reads `drbdsetup events2 --now` (optionally with
// --timestamps and --statistics): the state its lines leave behind.
var DRBDEvents2 = Format{
	Name:    "drbdsetup-events2",
	Command: "drbdsetup events2 --now --statistics",
	Detect: func(in *Input) int {
		if reEvents2.MatchString(in.Text) {
			return 95
		}
		if strings.HasPrefix(in.Command, "drbdsetup events2") {
			return 90
		}
		return 0
	},
	Explain: func(in *Input) (Result, error) {
		rs, skipped := storage.ParseDRBDEvents2([]byte(in.Text))
		if len(rs) == 0 {
			return Result{}, errors.New("no drbdsetup events2 line (\"exists resource name:...\") in the text")
		}
		res := Result{Findings: storage.DiagnoseDRBD(rs, nil, "drbdsetup events2")}
		res.Notes = append(res.Notes, drbdNotes(rs, skipped)...)
		return res, nil
	},
}

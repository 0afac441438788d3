package explain

import (
	"errors"
	"regexp"
	"strings"

	"github.com/hinomi/hinomi/internal/storage"
)

var reSmartDev = regexp.MustCompile(`\s(/dev/[A-Za-z0-9/_.:-]+)`)

// deviceOf is the disk a pasted smartctl command line names.
func deviceOf(cmd string) string {
	if m := reSmartDev.FindStringSubmatch(" " + cmd); m != nil {
		return m[1]
	}
	return ""
}

// SmartctlText reads the text of `smartctl -a DEVICE` (or -x, -H -A;
// smartctl 5.x to 7.x; ATA, NVMe and SCSI disks).
var SmartctlText = Format{
	Name:    "smartctl",
	Command: "smartctl -a /dev/DISK",
	Detect: func(in *Input) int {
		t := in.Text
		switch {
		case strings.Contains(t, "SMART overall-health self-assessment") || strings.Contains(t, "SMART Health Status:") ||
			strings.Contains(t, "ID# ATTRIBUTE_NAME") || strings.Contains(t, "=== START OF SMART DATA SECTION ==="):
			return 90
		case strings.HasPrefix(in.Command, "smartctl") && !strings.Contains(in.Command, "-j") && !strings.Contains(in.Command, "--json"):
			return 80
		}
		return 0
	},
	Explain: func(in *Input) (Result, error) {
		d := storage.ParseSmartText([]byte(in.Text), deviceOf(in.Command))
		if d.Passed == nil && len(d.Attrs) == 0 && d.NVMe == nil {
			return Result{}, errors.New("no health verdict, attribute table or NVMe health log in the text")
		}
		var res Result
		if f, ok := storage.DiagnoseSmart(d, "smartctl -a"); ok {
			res.Findings = append(res.Findings, f)
		}
		if d.Device == "" {
			res.Notes = append(res.Notes, "The paste does not say which disk it is: include the smartctl command line.")
		}
		return res, nil
	},
}

// SmartctlJSON reads `smartctl -a -j DEVICE` (smartctl 7.0 and later).
var SmartctlJSON = Format{
	Name:    "smartctl-json",
	Command: "smartctl -a -j /dev/DISK",
	Detect: func(in *Input) int {
		if strings.Contains(in.Text, `"json_format_version"`) && strings.Contains(in.Text, `"smartctl"`) {
			return 95
		}
		return 0
	},
	Explain: func(in *Input) (Result, error) {
		d, err := storage.ParseSmartJSON([]byte(in.Text))
		if err != nil {
			return Result{}, err
		}
		if d.Device == "" {
			d.Device = deviceOf(in.Command)
		}
		var res Result
		if d.Passed == nil && len(d.Attrs) == 0 && d.NVMe == nil {
			for _, m := range d.Messages {
				res.Notes = append(res.Notes, "smartctl: "+m)
			}
			res.Notes = append(res.Notes, "The output holds no SMART data for this disk.")
			return res, nil
		}
		if f, ok := storage.DiagnoseSmart(d, "smartctl -a -j"); ok {
			res.Findings = append(res.Findings, f)
		}
		return res, nil
	},
}

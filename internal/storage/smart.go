package storage

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path"
	"regexp"
	"strconv"
	"strings"

	"github.com/hinomi/hinomi/internal/finding"
)

// SmartDisk is what smartctl says about one disk.
type SmartDisk struct {
	Device   string `json:"device"` // /dev/sda, when known
	Model    string `json:"model,omitempty"`
	Serial   string `json:"serial,omitempty"`
	Protocol string `json:"protocol,omitempty"` // ATA, NVMe, SCSI
	// Passed is the overall health verdict; nil when not printed.
	Passed *bool       `json:"passed,omitempty"`
	Attrs  []SmartAttr `json:"attrs,omitempty"`
	NVMe   *NVMeHealth `json:"nvme,omitempty"`
	// GrownDefects is a SCSI disk's grown defect list length (-1 unknown).
	GrownDefects int64 `json:"grown_defects"`
	// ExitStatus is smartctl's exit status bit mask (-1 unknown).
	ExitStatus int      `json:"exit_status"`
	Messages   []string `json:"messages,omitempty"`
	Version    string   `json:"version,omitempty"`
}

// SmartAttr is one ATA SMART attribute.
type SmartAttr struct {
	ID      int    `json:"id"`
	Name    string `json:"name"`
	Value   int    `json:"value"`
	Worst   int    `json:"worst"`
	Thresh  int    `json:"thresh"`
	Prefail bool   `json:"prefail"`
	// WhenFailed is "" (never), "now" or "past".
	WhenFailed string `json:"when_failed,omitempty"`
	Raw        int64  `json:"raw"`
}

// NVMeHealth is the NVMe SMART/health log.
type NVMeHealth struct {
	CriticalWarning int   `json:"critical_warning"`
	AvailableSpare  int   `json:"available_spare"`
	SpareThreshold  int   `json:"available_spare_threshold"`
	PercentageUsed  int   `json:"percentage_used"`
	MediaErrors     int64 `json:"media_errors"`
}

type smartJSON struct {
	Smartctl struct {
		Version    []int `json:"version"`
		ExitStatus *int  `json:"exit_status"`
		Messages   []struct {
			String string `json:"string"`
		} `json:"messages"`
	} `json:"smartctl"`
	Device struct {
		Name     string `json:"name"`
		Protocol string `json:"protocol"`
	} `json:"device"`
	ModelName   string `json:"model_name"`
	Serial      string `json:"serial_number"`
	SmartStatus *struct {
		Passed *bool `json:"passed"`
	} `json:"smart_status"`
	ATA *struct {
		Table []struct {
			ID         int    `json:"id"`
			Name       string `json:"name"`
			Value      int    `json:"value"`
			Worst      int    `json:"worst"`
			Thresh     int    `json:"thresh"`
			WhenFailed string `json:"when_failed"`
			Flags      struct {
				Prefailure bool `json:"prefailure"`
			} `json:"flags"`
			Raw struct {
				Value int64 `json:"value"`
			} `json:"raw"`
		} `json:"table"`
	} `json:"ata_smart_attributes"`
	NVMe *struct {
		CriticalWarning int   `json:"critical_warning"`
		AvailableSpare  int   `json:"available_spare"`
		SpareThreshold  int   `json:"available_spare_threshold"`
		PercentageUsed  int   `json:"percentage_used"`
		MediaErrors     int64 `json:"media_errors"`
	} `json:"nvme_smart_health_information_log"`
	GrownDefects *int64 `json:"scsi_grown_defect_list"`
	Devices      []struct {
		Name string `json:"name"`
		Type string `json:"type"`
	} `json:"devices"`
}

// ParseSmartJSON reads `smartctl -a -j DEVICE` (smartctl 7.0 and later).
// A truncated paste is read up to its last complete value.
func ParseSmartJSON(b []byte) (SmartDisk, error) {
	var j smartJSON
	if err := decodeLenient(b, &j); err != nil {
		return SmartDisk{}, fmt.Errorf("smartctl JSON: %w", err)
	}
	d := SmartDisk{Device: j.Device.Name, Model: j.ModelName, Serial: j.Serial, Protocol: j.Device.Protocol, ExitStatus: -1, GrownDefects: -1}
	if j.Smartctl.ExitStatus != nil {
		d.ExitStatus = *j.Smartctl.ExitStatus
	}
	if len(j.Smartctl.Version) >= 2 {
		d.Version = fmt.Sprintf("%d.%d", j.Smartctl.Version[0], j.Smartctl.Version[1])
	}
	for _, m := range j.Smartctl.Messages {
		d.Messages = append(d.Messages, m.String)
	}
	if j.SmartStatus != nil {
		d.Passed = j.SmartStatus.Passed
	}
	if j.ATA != nil {
		for _, a := range j.ATA.Table {
			w := strings.ToLower(a.WhenFailed)
			if w == "in_the_past" {
				w = "past"
			}
			if w == "-" {
				w = ""
			}
			d.Attrs = append(d.Attrs, SmartAttr{ID: a.ID, Name: a.Name, Value: a.Value, Worst: a.Worst, Thresh: a.Thresh, Prefail: a.Flags.Prefailure, WhenFailed: w, Raw: a.Raw.Value})
		}
	}
	if n := j.NVMe; n != nil {
		d.NVMe = &NVMeHealth{CriticalWarning: n.CriticalWarning, AvailableSpare: n.AvailableSpare, SpareThreshold: n.SpareThreshold, PercentageUsed: n.PercentageUsed, MediaErrors: n.MediaErrors}
	}
	if j.GrownDefects != nil {
		d.GrownDefects = *j.GrownDefects
	}
	return d, nil
}

// ScanDevice is one device `smartctl --scan -j` lists.
type ScanDevice struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// ParseSmartScan reads `smartctl --scan -j`.
func ParseSmartScan(b []byte) ([]ScanDevice, error) {
	var j smartJSON
	if err := decodeLenient(b, &j); err != nil {
		return nil, fmt.Errorf("smartctl --scan -j: %w", err)
	}
	var out []ScanDevice
	for _, d := range j.Devices {
		if d.Name != "" {
			out = append(out, ScanDevice{Name: d.Name, Type: d.Type})
		}
	}
	return out, nil
}

// decodeLenient unmarshals JSON that may be preceded by a prompt or cut
// off at its end.
func decodeLenient(b []byte, v any) error {
	b = bytes.TrimSpace(jsonStart(b))
	err := json.Unmarshal(b, v)
	if err == nil {
		return nil
	}
	if fixed, ok := repairJSON(b); ok {
		if json.Unmarshal(fixed, v) == nil {
			return nil
		}
	}
	return err
}

var (
	reAttr = regexp.MustCompile(`^\s*(\d+)\s+(\S+)\s+0x[0-9a-fA-F]+\s+(\d+)\s+(\d+)\s+(\d+)\s+(Pre-fail|Old_age)\s+\S+\s+(\S+)\s+(\d+)`)
	// smartctl -x prints flags as letters and the failure as NOW/Past.
	reAttrX  = regexp.MustCompile(`^\s*(\d+)\s+(\S+)\s+([PO-][O-][S-][R-][C-][K-]\+?)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\S+)\s+(\d+)`)
	reHealth = regexp.MustCompile(`(?:self-assessment test result|SMART Health Status):\s*(\S+)`)
	reSmartc = regexp.MustCompile(`\bsmartctl\b.*?\s(/dev/[A-Za-z0-9/_.:-]+)`)
)

// ParseSmartText reads the text of `smartctl -a` (or -x, -H -A) of one
// disk, from smartctl 5.x to 7.x. device is the disk when the caller knows
// it; otherwise the command line in the paste names it.
func ParseSmartText(b []byte, device string) SmartDisk {
	d := SmartDisk{Device: device, ExitStatus: -1, GrownDefects: -1}
	var nvme NVMeHealth
	seenNVMe := false
	for _, line := range cleanLines(b) {
		t := strings.TrimSpace(line)
		if d.Device == "" && strings.Contains(t, "smartctl") && strings.Contains(t, "/dev/") {
			if m := reSmartc.FindStringSubmatch(t); m != nil {
				d.Device = m[1]
			}
		}
		if v, ok := strings.CutPrefix(t, "smartctl "); ok && d.Version == "" {
			if f := strings.Fields(v); len(f) > 0 && f[0] != "version" && len(f[0]) > 0 && f[0][0] >= '0' && f[0][0] <= '9' {
				d.Version = f[0]
			} else if len(f) > 1 && f[0] == "version" {
				d.Version = f[1]
			}
		}
		if m := reHealth.FindStringSubmatch(t); m != nil {
			ok := m[1] == "PASSED" || m[1] == "OK"
			d.Passed = &ok
			continue
		}
		if m := reAttr.FindStringSubmatch(line); m != nil {
			d.Attrs = append(d.Attrs, textAttr(m[1], m[2], m[3], m[4], m[5], m[6] == "Pre-fail", m[7], m[8]))
			continue
		}
		if m := reAttrX.FindStringSubmatch(line); m != nil {
			d.Attrs = append(d.Attrs, textAttr(m[1], m[2], m[4], m[5], m[6], m[3][0] == 'P', m[7], m[8]))
			continue
		}
		k, v, ok := strings.Cut(t, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch strings.TrimSpace(k) {
		case "Device Model", "Model Number", "Product":
			if d.Model == "" {
				d.Model = v
			}
		case "Serial Number", "Serial number":
			d.Serial = v
		case "Critical Warning":
			seenNVMe = true
			x, _ := strconv.ParseInt(strings.TrimPrefix(v, "0x"), 16, 32)
			nvme.CriticalWarning = int(x)
		case "Available Spare":
			seenNVMe = true
			nvme.AvailableSpare = pct(v)
		case "Available Spare Threshold":
			nvme.SpareThreshold = pct(v)
		case "Percentage Used":
			nvme.PercentageUsed = pct(v)
		case "Media and Data Integrity Errors":
			nvme.MediaErrors, _ = strconv.ParseInt(strings.ReplaceAll(v, ",", ""), 10, 64)
		case "Elements in grown defect list":
			d.GrownDefects, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	if seenNVMe {
		d.NVMe = &nvme
		d.Protocol = "NVMe"
	} else if len(d.Attrs) > 0 {
		d.Protocol = "ATA"
	}
	return d
}

func textAttr(id, name, val, worst, thresh string, prefail bool, when, raw string) SmartAttr {
	a := SmartAttr{Name: name, Prefail: prefail}
	a.ID, _ = strconv.Atoi(id)
	a.Value, _ = strconv.Atoi(val)
	a.Worst, _ = strconv.Atoi(worst)
	a.Thresh, _ = strconv.Atoi(thresh)
	a.Raw, _ = strconv.ParseInt(raw, 10, 64)
	switch strings.ToLower(when) {
	case "failing_now", "now":
		a.WhenFailed = "now"
	case "in_the_past", "past":
		a.WhenFailed = "past"
	}
	return a
}

func pct(s string) int {
	v, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(s, "%")))
	return v
}

// SmartSubject is how findings name a disk.
func SmartSubject(d SmartDisk) string {
	if d.Device == "" {
		return "disk " + orDefault(d.Serial, "?")
	}
	return "disk " + path.Base(d.Device)
}

// The ATA attributes that count sectors the disk could not read or had
// to move: any of them above zero is media going bad.
var sectorAttrs = map[int]string{
	5:   "reallocated sectors",
	187: "reported uncorrectable errors",
	197: "sectors pending reallocation",
	198: "offline uncorrectable sectors",
}

// DiagnoseSmart judges one disk.
func DiagnoseSmart(d SmartDisk, source string) (finding.Finding, bool) {
	var sev finding.Severity
	summary := ""
	var notes []string
	state := ""
	raise := func(s finding.Severity, st, words string) {
		notes = append(notes, words)
		if s > sev {
			sev, summary, state = s, words, st
		}
	}
	name := SmartSubject(d)[len("disk "):]
	if d.Passed != nil && !*d.Passed {
		raise(finding.High, "SMART FAILED", fmt.Sprintf("Disk %s fails its SMART overall health check: the drive itself predicts its failure.", name))
	} else if d.ExitStatus > 0 && d.ExitStatus&8 != 0 {
		raise(finding.High, "SMART FAILED", fmt.Sprintf("Disk %s: smartctl reports the disk failing (exit status %d).", name, d.ExitStatus))
	}
	var figs []finding.Figure
	for _, a := range d.Attrs {
		switch {
		case a.WhenFailed == "now" && a.Prefail:
			raise(finding.High, "FAILING_NOW", fmt.Sprintf("Disk %s: pre-fail attribute %s is failing now (value %d at or below threshold %d).", name, a.Name, a.Value, a.Thresh))
		case a.WhenFailed == "now":
			raise(finding.Medium, "FAILING_NOW", fmt.Sprintf("Disk %s: attribute %s is below its threshold now (value %d, threshold %d).", name, a.Name, a.Value, a.Thresh))
		case a.WhenFailed == "past" && a.Prefail:
			raise(finding.Medium, "failed in the past", fmt.Sprintf("Disk %s: pre-fail attribute %s has failed in the past (worst %d, threshold %d).", name, a.Name, a.Worst, a.Thresh))
		}
		if what, ok := sectorAttrs[a.ID]; ok && a.Raw > 0 {
			sev := finding.Medium
			if a.ID == 5 && a.Raw < 100 {
				sev = finding.Low
			}
			raise(sev, "sectors failing", fmt.Sprintf("Disk %s has %d %s (%s): the media is going bad.", name, a.Raw, what, a.Name))
			figs = append(figs, finding.Figure{Name: what + " on " + name, Value: float64(a.Raw), Source: source})
		}
	}
	if n := d.NVMe; n != nil {
		if n.CriticalWarning != 0 {
			raise(finding.High, "critical warning", fmt.Sprintf("NVMe disk %s raises critical warning 0x%02x (%s).", name, n.CriticalWarning, nvmeWarning(n.CriticalWarning)))
		}
		if n.SpareThreshold > 0 && n.AvailableSpare < n.SpareThreshold {
			raise(finding.High, "spare exhausted", fmt.Sprintf("NVMe disk %s has %d%% spare left, below its threshold of %d%%.", name, n.AvailableSpare, n.SpareThreshold))
		}
		switch {
		case n.PercentageUsed >= 100:
			raise(finding.High, "worn out", fmt.Sprintf("NVMe disk %s has used %d%% of its rated endurance.", name, n.PercentageUsed))
		case n.PercentageUsed >= 90:
			raise(finding.Medium, "worn out", fmt.Sprintf("NVMe disk %s has used %d%% of its rated endurance.", name, n.PercentageUsed))
		}
		if n.MediaErrors > 0 {
			raise(finding.Medium, "media errors", fmt.Sprintf("NVMe disk %s has logged %d media and data integrity errors: the flash is failing.", name, n.MediaErrors))
			figs = append(figs, finding.Figure{Name: "media errors on " + name, Value: float64(n.MediaErrors), Source: source})
		}
		figs = append(figs, finding.Figure{Name: "endurance used on " + name, Value: float64(n.PercentageUsed), Limit: 100, Unit: "%", Source: source})
	}
	if d.GrownDefects > 0 {
		raise(finding.Medium, "sectors failing", fmt.Sprintf("SCSI disk %s has %d sectors in its grown defect list.", name, d.GrownDefects))
	}
	if sev == 0 {
		return finding.Finding{}, false
	}
	vars := map[string]string{"state": state, "kind": "smart"}
	if dv := diskOf(d.Device); dv != "" {
		vars["device"] = dv
	} else if d.Device != "" {
		vars["device"] = path.Base(d.Device)
	}
	// The summary is the worst item; the notes repeat only the others.
	var rest []string
	for _, n := range notes {
		if n != summary {
			rest = append(rest, n)
		}
	}
	id := strings.TrimSpace(d.Model + " " + d.Serial)
	if id != "" {
		rest = append(rest, "Model and serial: "+id+" (the serial is on the disk's label).")
	}
	return finding.Finding{
		Mode: "FM-C8", Severity: sev, Subject: SmartSubject(d), Summary: summary,
		Evidence: finding.Evidence{Figures: figs, Notes: rest, Vars: vars},
	}, true
}

func nvmeWarning(w int) string {
	var s []string
	for bit, what := range []string{"spare below threshold", "temperature", "reliability degraded", "read-only", "volatile memory backup failed", "persistent memory read-only"} {
		if w&(1<<bit) != 0 {
			s = append(s, what)
		}
	}
	if len(s) == 0 {
		return "unknown"
	}
	return strings.Join(s, ", ")
}

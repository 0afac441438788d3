package probe

import (
	"bufio"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

type probesFile struct {
	Probes []Spec `yaml:"probes"`
}

func TestSpecYAMLAndDefaults(t *testing.T) {
	src := `
probes:
  - name: shop
    type: http
    target: https://shop.example.org/
    interval: 30s
    conditions: ['[BODY] not contains "Something went wrong"']
  - name: shop-nofollow
    type: HTTP
    target: http://shop.example.org/old
    interval: 5s
    follow_redirects: false
  - name: www
    type: dns
    target: www.example.org
`
	var f probesFile
	if err := yaml.Unmarshal([]byte(src), &f); err != nil {
		t.Fatal(err)
	}
	for i := range f.Probes {
		if err := f.Probes[i].Validate(); err != nil {
			t.Fatal(err)
		}
	}
	shop, nofollow, www := f.Probes[0], f.Probes[1], f.Probes[2]
	if shop.Interval != 30*time.Second || shop.Timeout != 10*time.Second || shop.Method != "GET" || !shop.FollowsRedirects() {
		t.Errorf("shop: %+v", shop)
	}
	if nofollow.Type != HTTP || nofollow.Timeout != 5*time.Second || nofollow.FollowsRedirects() {
		t.Errorf("nofollow: interval %s timeout %s follows %v; want 5s, 5s, false",
			nofollow.Interval, nofollow.Timeout, nofollow.FollowsRedirects())
	}
	if www.Interval != DefaultInterval || www.RecordType != "A" {
		t.Errorf("www: %+v", www)
	}
	if len(nofollow.compiled.conditions) != 1 || nofollow.compiled.conditions[0].text != "[STATUS] < 400" {
		t.Errorf("default http condition not applied")
	}
	// Durations need a unit, as in the rest of hinomi's YAML.
	if err := yaml.Unmarshal([]byte("probes: [{name: x, type: tcp, target: 'h:1', interval: 30}]"), &f); err == nil {
		t.Error("interval: 30 accepted")
	}
}

func TestSpecValidateErrors(t *testing.T) {
	for _, tc := range []struct {
		spec Spec
		want string
	}{
		{Spec{Type: TCP, Target: "h:1"}, "name is required"},
		{Spec{Name: "x", Type: "pop3", Target: "h:1"}, `type "pop3" is not one of http, tcp, dns, tls, icmp, smtp, imap, ssh, domain, docker`},
		{Spec{Name: "x", Type: HTTP, Target: "shop.example.org"}, "not an http:// or https:// URL (e.g. https://shop.example.org)"},
		{Spec{Name: "x", Type: HTTP, Target: "shop.lan:8080/health"}, "not an http:// or https:// URL (e.g. https://shop.lan:8080/health)"},
		{Spec{Name: "x", Type: HTTP}, "target is required"},
		{Spec{Name: "x", Type: TCP, Target: "db1"}, "is not host:port"},
		{Spec{Name: "x", Type: TLS, Target: "db1:https"}, "not a number from 1 to 65535"},
		{Spec{Name: "x", Type: ICMP, Target: "db1:22"}, "no port for icmp"},
		{Spec{Name: "x", Type: DNS, Target: "bad..name"}, "not a domain name"},
		{Spec{Name: "x", Type: DNS, Target: "a.b", RecordType: "SRV"}, `record_type "SRV"`},
		{Spec{Name: "x", Type: DNS, Target: "a.b", Resolver: "1.1.1.1"}, "resolver:"},
		{Spec{Name: "x", Type: TCP, Target: "h:1", Method: "POST"}, "method is only for http probes"},
		{Spec{Name: "x", Type: TCP, Target: "h:1", RecordType: "A"}, "only for dns probes"},
		{Spec{Name: "x", Type: ICMP, Target: "h", InsecureSkipVerify: true}, "only for http, tls, smtp and imap"},
		{Spec{Name: "x", Type: TCP, Target: "h:1", Interval: 500 * time.Millisecond}, "shorter than 1s"},
		{Spec{Name: "x", Type: TCP, Target: "h:1", Interval: 5 * time.Second, Timeout: 6 * time.Second}, "runs would overlap"},
		{Spec{Name: "x", Type: HTTP, Target: "http://h/", Method: "GE T"}, "not an HTTP method"},
		{Spec{Name: "x", Type: SMTP, Target: "mail.lan"}, "is not host:port"},
		{Spec{Name: "x", Type: SMTP, Target: "mail.lan:25", TLS: "yes"}, `tls "yes" is not one of auto, implicit, starttls, none`},
		{Spec{Name: "x", Type: TCP, Target: "mail.lan:25", TLS: "starttls"}, "tls is only for smtp and imap probes"},
		{Spec{Name: "x", Type: IMAP, Target: "mail.lan:143", TLS: "none", Degraded: []string{"[CERTIFICATE_EXPIRATION] > 7d"}}, "which tls: none never measures"},
		{Spec{Name: "x", Type: SSH, Target: "h:22", InsecureSkipVerify: true}, "only for http, tls, smtp and imap"},
		{Spec{Name: "x", Type: SSH, Target: "h:22", Conditions: []string{"[CERTIFICATE_EXPIRATION] > 1d"}}, "not measured by ssh probes"},
		{Spec{Name: "x", Type: SSH, Target: "h:22", Conditions: []string{"[BODY].a == b"}}, "only [BODY] of an http, docker or domain probe takes a JSON path"},
		{Spec{Name: "x", Type: Docker, Target: "web app"}, "not a container name or ID"},
		{Spec{Name: "x", Type: Docker, Target: "web", Conditions: []string{"[IP] == 10.0.0.1"}}, "not measured by docker probes"},
	} {
		err := tc.spec.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: got %v; want %q", tc.spec, err, tc.want)
		}
	}
}

// docBlocks returns the fenced blocks of one language in docs/probes.md.
func docBlocks(t *testing.T, lang string) []string {
	t.Helper()
	f, err := os.Open("../../docs/probes.md")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	var blocks []string
	var cur *strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case cur == nil && line == "```"+lang:
			cur = &strings.Builder{}
		case cur != nil && line == "```":
			blocks = append(blocks, cur.String())
			cur = nil
		case cur != nil:
			cur.WriteString(line + "\n")
		}
	}
	return blocks
}

// The documentation's examples are loaded as written.
func TestDocsExamplesValidate(t *testing.T) {
	blocks := docBlocks(t, "yaml")
	if len(blocks) < 5 {
		t.Fatalf("found %d yaml examples in docs/probes.md; want one per type", len(blocks))
	}
	types := map[Type]bool{}
	for _, b := range blocks {
		var f probesFile
		dec := yaml.NewDecoder(strings.NewReader(b))
		dec.KnownFields(true)
		if err := dec.Decode(&f); err != nil {
			t.Errorf("%v in:\n%s", err, b)
			continue
		}
		for i := range f.Probes {
			if err := f.Probes[i].Validate(); err != nil {
				t.Errorf("docs example: %v", err)
			}
			types[f.Probes[i].Type] = true
		}
	}
	for _, typ := range Types {
		if !types[typ] {
			t.Errorf("docs/probes.md has no %s example", typ)
		}
	}
}

// The error messages listed in the documentation are the ones given.
func TestDocsErrorsAreExact(t *testing.T) {
	var lines []string
	for _, b := range docBlocks(t, "text") {
		for _, l := range strings.Split(strings.TrimSpace(b), "\n") {
			if strings.HasPrefix(l, "conditions[0]: ") {
				lines = append(lines, l)
			}
		}
	}
	if len(lines) < 10 {
		t.Fatalf("found %d documented errors; want the list under ### Errors", len(lines))
	}
	for _, line := range lines {
		// The condition is the quoted string after the prefix.
		rest := strings.TrimPrefix(line, "conditions[0]: ")
		end := strings.Index(rest, `": `)
		for end >= 0 && strings.HasSuffix(rest[:end], `\`) {
			next := strings.Index(rest[end+1:], `": `)
			if next < 0 {
				end = -1
				break
			}
			end += 1 + next
		}
		if end < 0 {
			t.Errorf("cannot read the condition in %q", line)
			continue
		}
		text := strings.ReplaceAll(strings.ReplaceAll(rest[1:end], `\"`, `"`), `\\`, `\`)
		s := Spec{Name: "doc", Type: HTTP, Target: "https://example.org/", Conditions: []string{text}}
		err := s.Validate()
		var ce *ConditionError
		if !errors.As(err, &ce) {
			t.Errorf("%q: got %v; want a condition error", text, err)
			continue
		}
		if ce.Error() != line {
			t.Errorf("documented:\n  %s\ngiven:\n  %s", line, ce.Error())
		}
	}
}

func TestSameConfig(t *testing.T) {
	a := Spec{Name: "a", Type: HTTP, Target: "http://h/", Headers: map[string]string{"X": "1"}}
	b := a
	b.Headers = map[string]string{"X": "1"}
	if err := a.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := b.Validate(); err != nil {
		t.Fatal(err)
	}
	if !sameConfig(&a, &b) {
		t.Error("equal specs differ")
	}
	b.Headers["X"] = "2"
	if sameConfig(&a, &b) {
		t.Error("a changed header went unnoticed")
	}
}

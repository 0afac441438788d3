package probe

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseConditionValid(t *testing.T) {
	for _, tc := range []struct {
		typ    Type
		target string
		text   string
	}{
		{HTTP, "https://x", "[STATUS] == 200"},
		{HTTP, "https://x", "  [STATUS]==200  "},
		{HTTP, "https://x", "[STATUS] < 400"},
		{HTTP, "https://x", "[STATUS] in (200, 204,301)"},
		{HTTP, "https://x", "[STATUS] not in (500)"},
		{HTTP, "https://x", `[BODY] contains "Welcome"`},
		{HTTP, "https://x", `[BODY] not contains "Something went wrong"`},
		{HTTP, "https://x", `[BODY] NOT CONTAINS "エラーが発生しました"`},
		{HTTP, "https://x", `[BODY] matches /^<!doctype html>/i`},
		{HTTP, "https://x", `[BODY] not matches /error \d+/`},
		{HTTP, "https://x", `[BODY] matches /a\/b/`},
		{HTTP, "https://x", "[BODY].status == up"},
		{HTTP, "https://x", `[BODY].status == "all good"`},
		{HTTP, "https://x", "[BODY].data[0].name == web-1"},
		{HTTP, "https://x", "[BODY][0] == x"},
		{HTTP, "https://x", "[BODY].count >= 3"},
		{HTTP, "https://x", "[BODY].load < 0.75"},
		{HTTP, "https://x", "[BODY].tags contains prod"},
		{HTTP, "https://x", "[RESPONSE_TIME] < 500ms"},
		{HTTP, "https://x", "[RESPONSE_TIME] <= 1.5s"},
		{HTTP, "https://x", "[CERTIFICATE_EXPIRATION] > 14d"},
		{HTTP, "https://x", "[CERTIFICATE_EXPIRATION] > 1d12h"},
		{HTTP, "https://x", "[CERTIFICATE_EXPIRATION] > 336h"},
		{HTTP, "https://x", "[CONNECTED] == true"},
		{HTTP, "https://x", "[IP] == 127.0.0.1"},
		{HTTP, "https://x", "[IP] in (127.0.0.1, ::1)"},
		{HTTP, "https://x", `[IP] contains "10.0."`},
		{TCP, "x:1", "[CONNECTED] == false"},
		{TCP, "x:1", "[RESPONSE_TIME] < 100ms"},
		{TLS, "x:443", "[CERTIFICATE_EXPIRATION] > 30d"},
		{DNS, "x", "[DNS_RCODE] == NOERROR"},
		{DNS, "x", "[DNS_RCODE] in (nxdomain, NOERROR)"},
		{DNS, "x", "[IP] == 192.0.2.1"},
		{DNS, "x", `[BODY] contains "mail.example.com."`},
		{ICMP, "x", "[RESPONSE_TIME] < 50ms"},
	} {
		if _, err := parseCondition(tc.text, tc.typ, tc.target); err != nil {
			t.Errorf("%s %q: %v", tc.typ, tc.text, err)
		}
	}
}

func TestParseConditionErrors(t *testing.T) {
	for _, tc := range []struct {
		typ    Type
		target string
		text   string
		col    int
		msg    string
	}{
		{HTTP, "https://x", "[BODY].status == up)", 20, `unexpected ")"`},
		{HTTP, "https://x", "", 1, "empty condition"},
		{HTTP, "https://x", "STATUS == 200", 1, "starts with a placeholder"},
		{HTTP, "https://x", "[STATUS == 200", 1, "missing ]"},
		{HTTP, "https://x", "[STATU] == 200", 1, "unknown placeholder [STATU]"},
		{HTTP, "https://x", "[status] == 200", 1, "written in capitals: [STATUS]"},
		{HTTP, "https://x", "[STATUS] = 200", 10, "write =="},
		{HTTP, "https://x", "[STATUS] ! 200", 10, "write != or not contains"},
		{HTTP, "https://x", "[STATUS]", 9, "missing operator"},
		{HTTP, "https://x", "[STATUS] ==", 12, "missing value after =="},
		{HTTP, "https://x", "[STATUS] is 200", 10, `unexpected "is": expected an operator`},
		{HTTP, "https://x", "[STATUS] == OK", 13, `compared with a number, not "OK"`},
		{HTTP, "https://x", "[STATUS] == any(200, OK)", 22, `not "OK"`},
		{HTTP, "https://x", "[RESPONSE_TIME] == pat(5*)", 17, "pat(...) matches text and numbers"},
		{HTTP, "https://x", "[STATUS] < pat(2*)", 12, "pat(...) compares with == or !="},
		{HTTP, "https://x", "[BODY] == pat(\xcc*)", 15, "pattern is not valid UTF-8"},
		{HTTP, "https://x", "[BODY] == pat([a-)", 15, "is not a pattern"},
		{HTTP, "https://x", "len([STATUS]) == 3", 1, "applies to [BODY]"},
		{HTTP, "https://x", "len([BODY].data == 3", 1, "missing ) after"},
		{HTTP, "https://x", "has(STATUS) == true", 5, "takes a placeholder"},
		{HTTP, "https://x", "has([BODY].x) == 1", 18, "true or false"},
		{HTTP, "https://x", "len([BODY].x) contains 1", 15, "is a number"},
		{HTTP, "https://x", "[BODY].a in ([BODY].b)", 14, "takes values, not a placeholder"},
		{HTTP, "https://x", "[STATUS] == [CONNECTED]", 13, "cannot be compared with [CONNECTED]"},
		{HTTP, "https://x", "[STATUS] in 200", 13, "in takes a list"},
		{HTTP, "https://x", "[STATUS] in ()", 13, "empty list"},
		{HTTP, "https://x", "[STATUS] in (200, 301", 13, "missing )"},
		{HTTP, "https://x", "[STATUS] in (200; 301)", 17, `expected , or )`},
		{HTTP, "https://x", "[STATUS] in (200, OK)", 19, `not "OK"`},
		{HTTP, "https://x", `[STATUS] == 200 && [BODY] contains "x"`, 17, "one condition per line"},
		{HTTP, "https://x", "[STATUS] contains 2", 10, "[STATUS] is a number"},
		{HTTP, "https://x", `[BODY] contains "abc`, 17, "unterminated string"},
		{HTTP, "https://x", `[BODY] contains "a\qb"`, 19, `unknown escape \q`},
		{HTTP, "https://x", `[BODY] contains ""`, 17, "empty text"},
		{HTTP, "https://x", "[BODY] matches /ab(c/", 16, "invalid regular expression: missing closing )"},
		{HTTP, "https://x", "[BODY] matches /abc", 16, "unterminated regular expression"},
		{HTTP, "https://x", `[BODY] matches "abc"`, 16, "matches takes a /regular expression/"},
		{HTTP, "https://x", "[BODY] matches /abc/x", 21, `unknown regular expression flag "x"`},
		{HTTP, "https://x", `[BODY] not containz "x"`, 12, `after "not", not "containz"`},
		{HTTP, "https://x", "[BODY] < 3", 8, "[BODY] is text"},
		{HTTP, "https://x", "[BODY].data[x].name == a", 12, "expected an array index"},
		{HTTP, "https://x", "[BODY].data[0 == a", 12, "expected an array index"},
		{HTTP, "https://x", "[BODY]. == a", 8, `field name after "."`},
		{HTTP, "https://x", "[BODY].name > abc", 15, `> compares numbers, not "abc"`},
		{HTTP, "https://x", "[STATUS].code == 200", 9, "[STATUS] has no fields"},
		{HTTP, "https://x", "[RESPONSE_TIME] < 5OOms", 19, "not a duration"},
		{HTTP, "https://x", "[RESPONSE_TIME] contains 5", 17, "is a duration"},
		{HTTP, "https://x", "[CERTIFICATE_EXPIRATION] > 14", 28, `"14" needs a unit`},
		{HTTP, "http://x", "[CERTIFICATE_EXPIRATION] > 14d", 1, "needs an https:// target"},
		{HTTP, "https://x", "[CONNECTED] > true", 13, "true or false"},
		{HTTP, "https://x", `[BODY] contains "エラー" )`, 23, `unexpected ")"`},
		{TCP, "x:1", "[STATUS] == 200", 1, "not measured by tcp probes"},
		{TCP, "x:1", "[BODY] contains x", 1, "not measured by tcp probes"},
		{TCP, "x:1", "[CONNECTED] == yes", 16, `not "yes"`},
		{DNS, "x", "[DNS_RCODE] == NOERRR", 16, "not a DNS response code"},
		{DNS, "x", "[DNS_RCODE] contains NO", 13, "response code"},
		{DNS, "x", "[BODY].a == b", 7, "only [BODY] of an http, docker or domain probe"},
		{DNS, "x", "[IP] == 1.2.3", 9, "not an IP address"},
		{ICMP, "x", "[CERTIFICATE_EXPIRATION] > 1d", 1, "not measured by icmp"},
	} {
		_, err := parseCondition(tc.text, tc.typ, tc.target)
		var ce *ConditionError
		if !errors.As(err, &ce) {
			t.Errorf("%q: got %v; want a *ConditionError", tc.text, err)
			continue
		}
		if ce.Column != tc.col || !strings.Contains(ce.Msg, tc.msg) {
			t.Errorf("%q: got column %d %q; want column %d containing %q", tc.text, ce.Column, ce.Msg, tc.col, tc.msg)
		}
	}
}

func TestValidateReportsConditionIndex(t *testing.T) {
	s := &Spec{Name: "web", Type: HTTP, Target: "https://example.org/", Conditions: []string{
		"[STATUS] == 200", `[BODY] contains "ok"`, "[BODY].status == up)",
	}, Degraded: []string{"[RESPONSE_TIME] < 5OO"}}
	err := s.Validate()
	if err == nil {
		t.Fatal("Validate accepted a bad condition")
	}
	want := `conditions[2]: "[BODY].status == up)": unexpected ")" at column 20`
	if !strings.Contains(err.Error(), want) {
		t.Errorf("got %q; want it to contain %q", err, want)
	}
	var ce *ConditionError
	if !errors.As(err, &ce) || ce.Field != "conditions" || ce.Index != 2 || ce.Column != 20 {
		t.Errorf("got %+v; want conditions[2] column 20", ce)
	}
	if !strings.Contains(err.Error(), `degraded[0]: "[RESPONSE_TIME] < 5OO": "5OO" is not a duration`) {
		t.Errorf("degraded error missing from %q", err)
	}
}

func TestEvaluate(t *testing.T) {
	jsonBody := `{"status":"up","count":3,"load":0.5,"ok":true,"code":"200","data":[{"name":"web-1"}],"tags":["prod","eu"],"nil":null}`
	for _, tc := range []struct {
		cond string
		o    observation
		want string // "" means it holds; else the expected failure text after "cond: "
	}{
		{"[STATUS] == 200", observation{status: 200, hasStatus: true}, ""},
		{"[STATUS] in (200, 204)", observation{status: 503, hasStatus: true}, "was 503"},
		{"[STATUS] not in (500, 503)", observation{status: 503, hasStatus: true}, "was 503"},
		{"[STATUS] < 400", observation{status: 302, hasStatus: true}, ""},
		{"[STATUS] == 200", observation{missing: "connection refused"}, "no response: connection refused"},
		{"[RESPONSE_TIME] < 500ms", observation{responseTime: 812 * time.Millisecond, hasRT: true}, "was 812ms"},
		{"[RESPONSE_TIME] < 1s", observation{responseTime: 812 * time.Millisecond, hasRT: true}, ""},
		{"[CERTIFICATE_EXPIRATION] > 14d", observation{certLeft: 72 * time.Hour, hasCert: true,
			certNotAfter: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}, "was 3d (expires 2026-12-01T00:00:00Z)"},
		{"[CERTIFICATE_EXPIRATION] > 14d", observation{certLeft: 20 * 24 * time.Hour, hasCert: true}, ""},
		{"[CONNECTED] == true", observation{connected: false}, "was false"},
		{"[CONNECTED] == false", observation{connected: false}, ""},
		{"[IP] == 127.0.0.1", observation{ip: "127.0.0.1"}, ""},
		{"[IP] == ::1", observation{ip: "0:0:0:0:0:0:0:1"}, ""},
		{`[BODY] contains "Welcome"`, observation{body: []byte("hello"), hasBody: true}, "body did not contain it"},
		{`[BODY] not contains "went wrong"`, observation{body: []byte("<h1>Something went wrong</h1>"), hasBody: true},
			`body contained it: "<h1>Something went wrong</h1>" at byte 14`},
		{`[BODY] matches /v\d+\.\d+/`, observation{body: []byte("version v1.22 ok"), hasBody: true}, ""},
		{`[BODY] not matches /error/i`, observation{body: []byte("an ERROR here"), hasBody: true}, `body matched: "an ERROR here" at byte 3`},
		{"[BODY].status == up", observation{body: []byte(jsonBody), hasBody: true}, ""},
		{"[BODY].status == down", observation{body: []byte(jsonBody), hasBody: true}, `was "up"`},
		{"[BODY].count >= 3", observation{body: []byte(jsonBody), hasBody: true}, ""},
		{"[BODY].count == 3.0", observation{body: []byte(jsonBody), hasBody: true}, ""},
		{"[BODY].load < 0.25", observation{body: []byte(jsonBody), hasBody: true}, "was 0.5"},
		{"[BODY].code == 200", observation{body: []byte(jsonBody), hasBody: true}, ""},
		{"[BODY].code > 100", observation{body: []byte(jsonBody), hasBody: true}, ""},
		{"[BODY].status > 1", observation{body: []byte(jsonBody), hasBody: true}, `was "up", not a number`},
		{"[BODY].ok == true", observation{body: []byte(jsonBody), hasBody: true}, ""},
		{"[BODY].nil == null", observation{body: []byte(jsonBody), hasBody: true}, ""},
		{"[BODY].data[0].name == web-1", observation{body: []byte(jsonBody), hasBody: true}, ""},
		{"[BODY].data[1].name == web-1", observation{body: []byte(jsonBody), hasBody: true}, "[BODY].data has 1 element(s), no [1]"},
		{"[BODY].missing == x", observation{body: []byte(jsonBody), hasBody: true}, `no field "missing" in [BODY]`},
		{"[BODY].status.x == x", observation{body: []byte(jsonBody), hasBody: true}, "[BODY].status is a string, not an object"},
		{"[BODY].tags contains prod", observation{body: []byte(jsonBody), hasBody: true}, ""},
		{"[BODY].tags not contains prod", observation{body: []byte(jsonBody), hasBody: true}, `was ["prod","eu"]`},
		{"[BODY].status in (up, ok)", observation{body: []byte(jsonBody), hasBody: true}, ""},
		{"[BODY].status == up", observation{body: []byte("<html>"), hasBody: true},
			"body is not JSON: invalid character '<' looking for beginning of value"},
		{`[BODY] contains "late"`, observation{body: []byte("early"), hasBody: true, truncated: true},
			"body did not contain it (only the first 1048576 bytes were read)"},
		{"[DNS_RCODE] == NOERROR", observation{rcode: "NXDOMAIN"}, "was NXDOMAIN"},
	} {
		c, err := parseCondition(tc.cond, HTTP, "https://x")
		if err != nil && strings.Contains(tc.cond, "DNS") {
			c, err = parseCondition(tc.cond, DNS, "x")
		}
		if err != nil {
			t.Fatalf("%q: %v", tc.cond, err)
		}
		o := tc.o
		ok, why := evaluate(c, &o)
		if ok != (tc.want == "") || why != tc.want {
			t.Errorf("%q: got %v %q; want %q", tc.cond, ok, why, tc.want)
		}
	}
}

func TestFailureMessagesStayShort(t *testing.T) {
	body := strings.Repeat("x", 5000) + "Something went wrong" + strings.Repeat("y", 5000)
	c, err := parseCondition(`[BODY] not contains "Something went wrong"`, HTTP, "https://x")
	if err != nil {
		t.Fatal(err)
	}
	_, why := evaluate(c, &observation{body: []byte(body), hasBody: true})
	if len(why) > 200 || !strings.Contains(why, "at byte 5000") {
		t.Errorf("got %d bytes %q; want a short snippet at byte 5000", len(why), why)
	}
	c, _ = parseCondition(`[BODY] == "x"`, HTTP, "https://x")
	if _, why := evaluate(c, &observation{body: []byte(body), hasBody: true}); len(why) > 200 {
		t.Errorf("got %d bytes; want the body truncated", len(why))
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"500ms": 500 * time.Millisecond, "2s": 2 * time.Second, "14d": 14 * 24 * time.Hour,
		"1.5d": 36 * time.Hour, "1d12h": 36 * time.Hour, "-1d": -24 * time.Hour,
	} {
		if got, err := parseDuration(in); err != nil || got != want {
			t.Errorf("parseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"d", "1dd", "xd", "1d-1h", "1e3d", "14"} {
		if _, err := parseDuration(in); err == nil {
			t.Errorf("parseDuration(%q) accepted", in)
		}
	}
}

// fuzz budget: 50000x (scripts/test runs each target for a count of executions)
func FuzzParseCondition(f *testing.F) {
	for _, s := range []string{
		"[STATUS] == 200", `[BODY] not contains "Something went wrong"`, "[BODY].data[0].name == a",
		"[BODY] matches /a\\/b/i", "[STATUS] in (200, 204)", "[CERTIFICATE_EXPIRATION] > 14d",
		"[BODY].status == up)", `[BODY] contains "エラー"`, "[RESPONSE_TIME] < 1d12h",
		"len([BODY].data) < 5", "has([BODY].errors) == false", "[BODY].name == pat(john*)",
		"[STATUS] == any(200, 429)", "[BODY].age == [BODY].id", "[RESPONSE_TIME] < 500",
		"[BODY] == pat(\xcc)",
	} {
		f.Add(s)
	}
	body := []byte(`{"status":"up","data":[{"name":"a"}]}`)
	f.Fuzz(func(t *testing.T, s string) {
		for _, typ := range []Type{HTTP, DNS} {
			c, err := parseCondition(s, typ, "https://x")
			if err != nil {
				var ce *ConditionError
				if !errors.As(err, &ce) {
					t.Fatalf("%q: error %v is not a *ConditionError", s, err)
				}
				if n := len([]rune(s)); ce.Column < 1 || ce.Column > n+1 {
					t.Fatalf("%q: column %d outside 1..%d", s, ce.Column, n+1)
				}
				continue
			}
			// Whatever parses must evaluate without panicking, with or without values.
			evaluate(c, &observation{})
			evaluate(c, &observation{status: 200, hasStatus: true, body: body, hasBody: true,
				responseTime: time.Millisecond, hasRT: true, certLeft: time.Hour, hasCert: true,
				connected: true, ip: "127.0.0.1", rcode: "NOERROR"})
		}
	})
}

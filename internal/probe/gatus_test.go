package probe

import (
	"testing"
)

// TestGatusConditions runs the conditions table of Gatus's README
// (https://github.com/TwiN/gatus/blob/master/README.md#conditions): each
// condition with the README's example of a value that passes and one
// that fails, so a Gatus configuration's conditions mean the same here.
func TestGatusConditions(t *testing.T) {
	body := func(s string) observation { return observation{body: []byte(s), hasBody: true} }
	status := func(n int) observation { return observation{status: n, hasStatus: true} }
	for _, tc := range []struct {
		cond       string
		pass, fail observation
	}{
		{"[STATUS] == 200", status(200), status(201)},
		{"[STATUS] != 200", status(201), status(200)},
		{"[STATUS] <= 299", status(200), status(300)},
		{"[STATUS] < 300", status(299), status(300)},
		{"[STATUS] > 400", status(401), status(400)},
		{"[STATUS] == any(200, 429)", status(429), status(500)},
		{"[STATUS] != any(500, 503)", status(200), status(503)},
		{"[STATUS] == pat(2*)", status(204), status(301)},
		{"[CONNECTED] == true", observation{connected: true}, observation{connected: false}},
		{"[RESPONSE_TIME] < 500", observation{responseTime: 499_000_000, hasRT: true}, observation{responseTime: 500_000_000, hasRT: true}},
		{"[IP] == 127.0.0.1", observation{ip: "127.0.0.1"}, observation{ip: "0.0.0.0"}},
		{"[BODY] == 1", body("1"), body("{}")},
		{"[BODY].user.name == john", body(`{"user":{"name":"john"}}`), body(`{"user":{"name":"jane"}}`)},
		{"[BODY].data[0].id == 1", body(`{"data":[{"id":1}]}`), body(`{"data":[{"id":2}]}`)},
		{"[BODY].age == [BODY].id", body(`{"age":1,"id":1}`), body(`{"age":1,"id":2}`)},
		{"[BODY].age < [BODY].limit", body(`{"age":1,"limit":10}`), body(`{"age":11,"limit":10}`)},
		{"len([BODY].data) < 5", body(`{"data":[{"id":1}]}`), body(`{"data":[1,2,3,4,5]}`)},
		{"len([BODY].name) == 8", body(`{"name":"john.doe"}`), body(`{"name":"bob"}`)},
		{"has([BODY].errors) == false", body(`{"name":"john.doe"}`), body(`{"errors":[]}`)},
		{"has([BODY].users) == true", body(`{"users":[]}`), body(`{}`)},
		{"has([BODY].users[0].name) == true", body(`{"users":[{"name":"a"}]}`), body(`{"users":[]}`)},
		{"[BODY].name == pat(john*)", body(`{"name":"john.doe"}`), body(`{"name":"bob"}`)},
		{"[BODY] == pat(*<title>Home</title>*)", body("<html><title>Home</title></html>"), body("<html><title>Error</title></html>")},
		// Gatus's pat() is filepath.Match's pattern, "/" taken out of both.
		{"[BODY].version == pat(v1.?)", body(`{"version":"v1.7"}`), body(`{"version":"v1.10"}`)},
		{"[BODY].zone == pat([a-c]-*)", body(`{"zone":"b-west"}`), body(`{"zone":"d-west"}`)},
		{"[BODY].path == pat(/api/*)", body(`{"path":"/api/v1/users"}`), body(`{"path":"/web/v1"}`)},
		{`[BODY].name == pat(a\*)`, body(`{"name":"a*"}`), body(`{"name":"ab"}`)},
		{"[BODY].name != pat(tmp-*)", body(`{"name":"web-1"}`), body(`{"name":"tmp-3"}`)},
		{"[BODY].id == any(1, 2)", body(`{"id":2}`), body(`{"id":3}`)},
		{"len([BODY]) > 2", body("abc"), body("ab")},
		{"[CERTIFICATE_EXPIRATION] > 48h", observation{certLeft: 49 * 3600e9, hasCert: true}, observation{certLeft: 3600e9, hasCert: true}},
	} {
		c, err := parseCondition(tc.cond, HTTP, "https://example.org")
		if err != nil {
			t.Errorf("%q: %v", tc.cond, err)
			continue
		}
		pass, fail := tc.pass, tc.fail
		if ok, why := evaluate(c, &pass); !ok {
			t.Errorf("%q on its passing example: failed: %s", tc.cond, why)
		}
		if ok, _ := evaluate(c, &fail); ok {
			t.Errorf("%q on its failing example: held", tc.cond)
		}
	}
}

// TestGatusFailureReasons: the functions' failures say what was seen.
func TestGatusFailureReasons(t *testing.T) {
	for _, tc := range []struct{ cond, body, want string }{
		{"has([BODY].errors) == false", `{"errors":[]}`, "was true"},
		{"has([BODY].users) == true", `{}`, `was false (no field "users" in [BODY])`},
		{"len([BODY].data) < 5", `{"data":[1,2,3,4,5]}`, "was 5"},
		{"len([BODY].data) < 5", `{}`, `no field "data" in [BODY]`},
		{"[BODY].name == pat(john*)", `{"name":"bob"}`, `was "bob"`},
		{"[BODY].age == [BODY].id", `{"age":1,"id":2}`, "was 1, [BODY].id was 2"},
		{"[BODY].age == [BODY].id", `{"age":1}`, `[BODY].id: no field "id" in [BODY]`},
	} {
		c, err := parseCondition(tc.cond, HTTP, "https://example.org")
		if err != nil {
			t.Fatalf("%q: %v", tc.cond, err)
		}
		o := observation{body: []byte(tc.body), hasBody: true}
		if ok, why := evaluate(c, &o); ok || why != tc.want {
			t.Errorf("%q on %s: ok=%v %q; want %q", tc.cond, tc.body, ok, why, tc.want)
		}
	}
}

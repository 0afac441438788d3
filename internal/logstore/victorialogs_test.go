package logstore

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestLogsQL(t *testing.T) {
	since := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	cases := []struct {
		query string
		edit  func(*Query)
		want  string
	}{
		{"", nil, `* | sort by (_time) | limit 1000`},
		{`error "disk full" -retry`, nil, `i("error") i("disk full") -i("retry") | sort by (_time) | limit 1000`},
		{`host:a host:b unit:x.service priority:err`, nil, `host:in("a", "b") unit:in("x.service") priority:range[0, 3] | sort by (_time) | limit 1000`},
		{`-host:a source:kmsg -priority:warning`, nil, `-host:="a" source:="kmsg" -priority:range[0, 4] | sort by (_time) | limit 1000`},
		{`"say \"hi\""`, nil, `i("say \"hi\"") | sort by (_time) | limit 1000`},
		{"oom", func(q *Query) {
			q.Since, q.Until, q.Limit, q.Newest = since, since.Add(90*time.Second), 5, true
		}, `i("oom") _time:>=2026-03-01T10:00:00Z _time:<2026-03-01T10:01:30Z | sort by (_time desc) | limit 5`},
	}
	for _, c := range cases {
		q, err := ParseQuery(c.query)
		if err != nil {
			t.Fatal(err)
		}
		if c.edit != nil {
			c.edit(&q)
		}
		if got := LogsQL(q); got != c.want {
			t.Errorf("LogsQL(%q):\ngot  %s\nwant %s", c.query, got, c.want)
		}
	}
}

// An Append VictoriaLogs does not accept is an error that says why; so is
// a server that does not answer.
func TestVictoriaLogsRefuses(t *testing.T) {
	bodies := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		bodies <- string(b)
		http.Error(w, "cannot parse JSON line", http.StatusBadRequest)
	}))
	defer srv.Close()
	s, err := Open(t.Context(), "victorialogs:"+srv.URL, "", Options{})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Append(t.Context(), []Entry{{Time: time.Now(), Host: "h", Line: "x"}})
	if err == nil || !strings.Contains(err.Error(), "400") || !strings.Contains(err.Error(), "cannot parse JSON line") {
		t.Errorf("Append to a server that refuses: %v; want its status and message", err)
	}
	body := <-bodies
	if !strings.Contains(body, `"_msg":"x"`) || !strings.Contains(body, `"host":"h"`) {
		t.Errorf("the request body %q lacks the line", body)
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	down, err := Open(t.Context(), "victorialogs:http://"+addr, "", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := down.Append(t.Context(), []Entry{{Time: time.Now(), Host: "h", Line: "x"}}); err == nil {
		t.Error("Append to a server that is down: no error")
	}
	if err := down.Search(t.Context(), Query{MaxPriority: 7}, func(Entry) bool { return true }); err == nil {
		t.Error("Search on a server that is down: no error")
	}
	for _, bad := range []string{"victorialogs:", "victorialogs:ftp://x", "victorialogs:http://", "elastic:http://x"} {
		if _, err := Open(t.Context(), bad, "", Options{}); err == nil {
			t.Errorf("Open(%q): no error", bad)
		}
	}
}

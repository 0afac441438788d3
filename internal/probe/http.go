package probe

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"strconv"
	"strings"
	"time"
)

// maxBody is how much of a response body is read and judged.
const maxBody = 1 << 20

const maxRedirects = 10

func runHTTP(ctx context.Context, s *Spec, env *Env, o *observation, values map[string]string) error {
	var body io.Reader
	if s.Body != "" {
		body = strings.NewReader(s.Body)
	}
	req, err := http.NewRequestWithContext(ctx, s.Method, s.Target, body)
	if err != nil {
		return err
	}
	for k, v := range s.Headers {
		if strings.EqualFold(k, "Host") {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", "hinomi-probe")
	}
	redirects := 0
	client := &http.Client{
		Transport: env.transport(s.InsecureSkipVerify, s.KeepAlive),
		CheckRedirect: func(_ *http.Request, via []*http.Request) error {
			if !s.FollowsRedirects() {
				return http.ErrUseLastResponse
			}
			if len(via) >= maxRedirects {
				return fmt.Errorf("stopped after %d redirects: %w", maxRedirects, errTooManyRedirects)
			}
			redirects = len(via)
			return nil
		},
	}
	// The address actually used, after redirects too.
	req = req.WithContext(httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GotConn: func(info httptrace.GotConnInfo) {
			o.ip = remoteIP(info.Conn.RemoteAddr())
		},
	}))
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	o.connected = true
	o.status, o.hasStatus = resp.StatusCode, true
	values["status"] = strconv.Itoa(resp.StatusCode)
	values["proto"] = resp.Proto
	if redirects > 0 {
		values["redirects"] = strconv.Itoa(redirects)
		values["final_url"] = resp.Request.URL.String()
	}
	if resp.TLS != nil {
		recordCert(o, resp.TLS.PeerCertificates, env.now(), values)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	// Response time runs to the last byte read.
	o.responseTime, o.hasRT = time.Since(start), true
	if len(b) > maxBody {
		b = b[:maxBody]
		o.truncated = true
		values["body_truncated"] = "true"
	}
	values["body_bytes"] = strconv.Itoa(len(b))
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("reading body: %w", err)
	}
	o.body, o.hasBody = b, true
	return nil
}

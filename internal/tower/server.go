package tower

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// tlsConfig serves the certificate loaded last: connections made after a
// reload get the new one, open ones keep theirs.
func (t *Tower) tlsConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return t.cert.Load(), nil
		},
	}
}

// SetUI mounts the pages (status page, console) beside the API.
func (t *Tower) SetUI(h http.Handler) { t.ui = h }

// Listen binds the HTTP address (so that callers know it before Run). It
// refuses an address other machines can reach while api_token is empty.
func (t *Tower) Listen() (net.Addr, error) {
	cfg := t.cfg.Load()
	l, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, err
	}
	if a, ok := l.Addr().(*net.TCPAddr); cfg.APIToken == "" && (!ok || !a.IP.IsLoopback()) {
		l.Close()
		return nil, fmt.Errorf("listen %s (%s) is reachable from other machines, and api_token is empty: the tower does not listen there without one. %s", cfg.Listen, l.Addr(), makeTokenHint)
	}
	t.mu.Lock()
	t.listener, t.serveTLS = l, cfg.cert != nil
	t.mu.Unlock()
	return l.Addr(), nil
}

// boundAddr is the address Listen bound, or nil.
func (t *Tower) boundAddr() net.Addr {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.listener == nil {
		return nil
	}
	return t.listener.Addr()
}

// Run serves until ctx is done, then shuts down: in-flight requests and
// notification sends finish, the store is closed.
func (t *Tower) Run(ctx context.Context) error {
	if t.listener == nil {
		if _, err := t.Listen(); err != nil {
			return err
		}
	}
	t.httpSrv = &http.Server{Handler: t.Handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 60 * time.Second,
		// The server's own complaints (a client that does not trust the
		// certificate, one speaking plain HTTP to HTTPS) go to the tower's log.
		ErrorLog: slog.NewLogLogger(t.log.Handler(), slog.LevelWarn)}
	if t.ui != nil {
		mux := http.NewServeMux()
		mux.Handle("/api/", t.Handler())
		mux.Handle("/push/", t.Handler())
		mux.Handle("/metrics", t.Handler())
		mux.Handle("/healthz", t.Handler())
		mux.Handle("/", t.ui)
		t.httpSrv.Handler = mux
	}
	errc := make(chan error, 1)
	if t.serveTLS {
		t.httpSrv.TLSConfig = t.tlsConfig()
		go func() { errc <- t.httpSrv.ServeTLS(t.listener, "", "") }()
	} else {
		go func() { errc <- t.httpSrv.Serve(t.listener) }()
	}

	dctx, stopDispatch := context.WithCancel(context.Background())
	t.mu.Lock()
	t.startNewDispatchers = func() { t.out.start(dctx) }
	t.mu.Unlock()
	t.out.start(dctx)

	go t.pollPeers(dctx)
	syslogDone := make(chan struct{})
	go func() {
		defer close(syslogDone)
		t.runSyslog(dctx)
	}()
	spoolDone := make(chan struct{})
	go func() {
		defer close(spoolDone)
		if t.in.spool != nil {
			t.in.keepSpool(dctx)
		}
	}()
	probesDone, historyDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(probesDone)
		t.runProbes(dctx)
	}()
	go func() {
		defer close(historyDone)
		t.keepHistory(dctx, probesDone)
	}()
	engineDone := make(chan struct{})
	go func() {
		defer close(engineDone)
		t.engine(ctx)
	}()

	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	shut, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	_ = t.httpSrv.Shutdown(shut)
	cancel()
	<-engineDone
	stopDispatch()
	<-historyDone // the probes stopped and their last results are written
	t.dispatchW.Wait()
	t.out.wg.Wait()
	<-spoolDone
	<-syslogDone
	if t.lead.shared != nil {
		// Handing over at once rather than after a lease.
		rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = t.lead.shared.Release(rctx, t.lead.holder)
		cancel()
	}
	if cerr := t.store.Close(); err == nil {
		err = cerr
	}
	if cerr := t.closeLogs(); err == nil {
		err = cerr
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

func constantTimeEqual(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

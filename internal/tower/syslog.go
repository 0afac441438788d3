package tower

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hinomi/hinomi/internal/finding"
	"github.com/hinomi/hinomi/internal/logstore"
	"github.com/hinomi/hinomi/internal/signatures"
	"github.com/hinomi/hinomi/internal/syslog"
	"github.com/hinomi/hinomi/internal/wire"
)

// The syslog receiver (docs/syslog.md): devices without an agent send
// their logs here. Each message becomes a stored line (host: the HOSTNAME
// it names, else the sender's address) and goes through the signatures:
// a match is a finding on that host, as an agent's would be, resolved
// after the signature's quiet period.
//
// Bounds: a message is cut at logstore.MaxLine (marked); at most
// maxSyslogConns streams at once; each sender is held to logs.rate_limit
// (what it sends past it is dropped and counted in a stored line); the
// lines wait in a queue of syslogQueue: a stream's reader waits while it
// is full (TCP pushes back on the sender), a datagram is dropped and
// counted.

const (
	syslogQueue    = 20000
	syslogBatch    = 2000
	syslogFlush    = 200 * time.Millisecond
	maxSyslogConns = 512
	// syslogIdle closes a stream that sent nothing for this long.
	syslogIdle = 30 * time.Minute
	// maxSyslogHosts bounds the hosts whose distress is followed.
	maxSyslogHosts = 4096
	// maxLogRecords bounds the matched lines kept per host per flush as
	// the finding's evidence.
	maxLogRecords = 20
	// syslogSpool is the spool name of a syslog host's records.
	syslogSpool = "syslog"
)

// syslogRx is the running receiver.
type syslogRx struct {
	t       *Tower
	matcher *signatures.Matcher
	queue   chan syslogLine
	conns   chan struct{}

	mu        sync.Mutex
	listeners []streamListener
	packets   []net.PacketConn
	hosts     map[string]*syslogHost
	limited   map[string]*limitedSender // sender address → its drops not yet stored
	queueDrop uint64                    // datagrams dropped with the queue full, not yet stored

	received *prometheus.CounterVec
	dropped  *prometheus.CounterVec
}

type streamListener struct {
	net.Listener
	transport string // tcp, tls
}

type syslogLine struct {
	entry logstore.Entry
	text  []byte // the line as the signatures read it
}

// syslogHost is what the receiver keeps about a sender's host: its
// distress as findings, and what the tower was sent of it.
type syslogHost struct {
	watch   *signatures.Watch
	logs    []wire.Log
	sent    map[string]string // key → fingerprint, as the tower has it
	changed bool
	last    time.Time
}

type limitedSender struct {
	host  string
	n     int
	first time.Time
}

func newSyslogRx(t *Tower) (*syslogRx, error) {
	cat, err := signatures.Builtin()
	if err != nil {
		return nil, err
	}
	rx := &syslogRx{t: t, matcher: signatures.NewMatcher(cat), queue: make(chan syslogLine, syslogQueue),
		conns: make(chan struct{}, maxSyslogConns), hosts: map[string]*syslogHost{}, limited: map[string]*limitedSender{},
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hinomi_tower_syslog_messages_total", Help: "Syslog messages received, by transport (udp, tcp, tls) and format (rfc5424, rfc3164, raw).",
		}, []string{"transport", "format"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hinomi_tower_syslog_dropped_total", Help: "Syslog messages not stored, by reason: rate_limited and queue_full (both counted in a stored line), not_allowed (a sender outside syslog.allow), too_many_connections.",
		}, []string{"reason"}),
	}
	t.Registry.MustRegister(rx.received, rx.dropped)
	return rx, nil
}

// ListenSyslog binds the syslog listeners of the configuration and
// returns their addresses (udp, then tcp, then tls, in the config's
// order). Run calls it if it was not called.
func (t *Tower) ListenSyslog() ([]net.Addr, error) {
	cfg := t.cfg.Load()
	s := cfg.Syslog
	if len(s.UDP)+len(s.TCP)+len(s.TLS) == 0 {
		return nil, nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.syslog != nil {
		return t.syslog.addrs(), nil
	}
	rx, err := newSyslogRx(t)
	if err != nil {
		return nil, err
	}
	fail := func(err error) ([]net.Addr, error) {
		rx.close()
		return nil, err
	}
	for _, a := range s.UDP {
		pc, err := net.ListenPacket("udp", a)
		if err != nil {
			return fail(fmt.Errorf("syslog udp %s: %w", a, err))
		}
		rx.packets = append(rx.packets, pc)
	}
	for _, a := range s.TCP {
		l, err := net.Listen("tcp", a)
		if err != nil {
			return fail(fmt.Errorf("syslog tcp %s: %w", a, err))
		}
		rx.listeners = append(rx.listeners, streamListener{l, "tcp"})
	}
	if len(s.TLS) > 0 {
		tc, err := t.syslogTLS(s)
		if err != nil {
			return fail(err)
		}
		for _, a := range s.TLS {
			l, err := net.Listen("tcp", a)
			if err != nil {
				return fail(fmt.Errorf("syslog tls %s: %w", a, err))
			}
			rx.listeners = append(rx.listeners, streamListener{tls.NewListener(l, tc), "tls"})
		}
	}
	t.syslog = rx
	return rx.addrs(), nil
}

// syslogTLS is the TLS listeners' configuration: syslog's own pair, else
// the tower's (reread on SIGHUP).
func (t *Tower) syslogTLS(s SyslogConfig) (*tls.Config, error) {
	if s.CertFile != "" {
		pair, err := tls.LoadX509KeyPair(s.CertFile, s.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("syslog: the TLS pair: %w", err)
		}
		return &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}, nil
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		if c := t.cert.Load(); c != nil {
			return c, nil
		}
		return nil, errors.New("the tower has no TLS certificate")
	}}, nil
}

func (rx *syslogRx) addrs() []net.Addr {
	var out []net.Addr
	for _, p := range rx.packets {
		out = append(out, p.LocalAddr())
	}
	for _, l := range rx.listeners {
		out = append(out, l.Addr())
	}
	return out
}

func (rx *syslogRx) close() {
	for _, p := range rx.packets {
		p.Close()
	}
	for _, l := range rx.listeners {
		l.Close()
	}
}

// runSyslog receives until ctx is done; it returns once every reader
// stopped and the queue is written.
func (t *Tower) runSyslog(ctx context.Context) {
	if _, err := t.ListenSyslog(); err != nil {
		t.log.Error("the syslog receiver cannot listen", "err", err)
		return
	}
	t.mu.Lock()
	rx := t.syslog
	t.mu.Unlock()
	if rx == nil {
		return
	}
	t.log.Info("syslog receiver listening", "addrs", fmt.Sprint(rx.addrs()))
	var readers sync.WaitGroup
	for _, pc := range rx.packets {
		readers.Go(func() { rx.readPackets(pc) })
	}
	for _, l := range rx.listeners {
		readers.Go(func() { rx.accept(ctx, l) })
	}
	written := make(chan struct{})
	go func() {
		defer close(written)
		rx.write(ctx)
	}()
	<-ctx.Done()
	rx.close()
	readers.Wait()
	close(rx.queue)
	<-written
}

// readPackets reads datagrams: one message each.
func (rx *syslogRx) readPackets(pc net.PacketConn) {
	p := syslog.NewParser(time.Local)
	buf := make([]byte, 64<<10)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		addr := addrOf(from)
		if !rx.allowed(addr) {
			continue
		}
		rx.take(p, buf[:n], 0, addr, "udp", false)
	}
}

// accept takes streams (TCP or TLS).
func (rx *syslogRx) accept(ctx context.Context, l streamListener) {
	var conns sync.WaitGroup
	defer conns.Wait()
	for {
		c, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond): // out of descriptors: do not spin
			}
			continue
		}
		select {
		case rx.conns <- struct{}{}:
		default:
			rx.dropped.WithLabelValues("too_many_connections").Inc()
			c.Close()
			continue
		}
		conns.Go(func() {
			defer func() { <-rx.conns }()
			rx.serveConn(ctx, c, l.transport)
		})
	}
}

// serveConn reads one stream's messages.
func (rx *syslogRx) serveConn(ctx context.Context, c net.Conn, transport string) {
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	addr := addrOf(c.RemoteAddr())
	if !rx.allowed(addr) {
		return
	}
	if tc, ok := c.(*tls.Conn); ok {
		hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			if rx.t.oncePerMinute("syslog tls " + addr.String()) {
				rx.t.log.Warn("a syslog sender's TLS handshake failed", "sender", addr.String(), "err", err)
			}
			return
		}
	}
	p := syslog.NewParser(time.Local)
	_ = c.SetReadDeadline(time.Now().Add(syslogIdle))
	_ = syslog.Frames(c, logstore.MaxLine, func(msg []byte, cut int64) error {
		_ = c.SetReadDeadline(time.Now().Add(syslogIdle))
		if !rx.take(p, msg, cut, addr, transport, true) {
			return context.Canceled
		}
		return nil
	})
}

func addrOf(a net.Addr) netip.Addr {
	if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

func (rx *syslogRx) allowed(addr netip.Addr) bool {
	s := rx.t.cfg.Load().Syslog
	if s.allowed(addr) {
		return true
	}
	rx.dropped.WithLabelValues("not_allowed").Inc()
	if rx.t.oncePerMinute("syslog refused " + addr.String()) {
		rx.t.log.Warn("syslog from a sender not in syslog.allow ignored (logged once a minute per sender)", "sender", addr.String())
	}
	return false
}

// take turns a message into a queued line; wait says whether to wait
// for room (a stream) or drop it (a datagram). It returns false when the
// receiver stops.
func (rx *syslogRx) take(p *syslog.Parser, b []byte, cut int64, addr netip.Addr, transport string, wait bool) bool {
	now := rx.t.now()
	m := p.Parse(b, addr, now)
	rx.received.WithLabelValues(transport, m.Format).Inc()
	cfg := rx.t.cfg.Load()
	if rx.t.allowLines("syslog "+addr.String(), 1, cfg.Logs, now) == 0 {
		rx.dropped.WithLabelValues("rate_limited").Inc()
		rx.mu.Lock()
		ls := rx.limited[addr.String()]
		if ls == nil {
			if len(rx.limited) >= maxBuckets {
				rx.mu.Unlock()
				return true
			}
			ls = &limitedSender{first: now}
			rx.limited[addr.String()] = ls
		}
		ls.host = m.Host
		ls.n++
		rx.mu.Unlock()
		return true
	}
	at := m.Time
	if at.After(now.Add(maxAhead)) || at.Before(now.Add(-maxBehind)) {
		at = now
	}
	text := m.Text
	fields := map[string]string{"sender": addr.String(), "format": m.Format}
	if cut > 0 {
		text = cutMarked(text)
		fields["cut_bytes"] = strconv.FormatInt(cut, 10)
	}
	if m.Facility >= 0 {
		fields["facility"] = strconv.Itoa(m.Facility)
	}
	if m.ProcID != "" {
		fields["pid"] = m.ProcID
	}
	if m.MsgID != "" {
		fields["msgid"] = m.MsgID
	}
	e := lineEntry(m.Host, at, "syslog", m.App, m.Severity, text, fields)
	// The signatures read a BSD line: "Jan  2 15:04:05 HOST APP[PID]: MSG".
	line := at.Format(time.Stamp) + " " + e.Host + " "
	if m.App != "" {
		line += m.App
		if m.ProcID != "" {
			line += "[" + m.ProcID + "]"
		}
		line += ": "
	}
	sl := syslogLine{entry: e, text: []byte(line + e.Line)}
	if !wait {
		select {
		case rx.queue <- sl:
		default:
			rx.dropped.WithLabelValues("queue_full").Inc()
			rx.mu.Lock()
			rx.queueDrop++
			rx.mu.Unlock()
		}
		return true
	}
	rx.queue <- sl
	return true
}

// cutMarked marks a line whose frame was cut: it ends in the store's cut
// marker.
func cutMarked(s string) string {
	if len(s) > logstore.MaxLine {
		return logstore.CutLine(s)
	}
	return logstore.CutLine(s + strings.Repeat(" ", logstore.MaxLine+1-len(s)))
}

// write stores the queue's lines in batches, runs the signatures over
// them and sends what they found to ingest, until the queue is closed.
func (rx *syslogRx) write(ctx context.Context) {
	tick := time.NewTicker(syslogFlush)
	defer tick.Stop()
	var batch []logstore.Entry
	flush := func() {
		batch = append(batch, rx.droppedEntries()...)
		for len(batch) > 0 {
			err := rx.t.appendLines(context.Background(), batch)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				rx.t.log.Error("syslog lines not stored as the tower stops: the log store refuses them", "lines", len(batch), "err", err)
				break
			}
			// The store refuses: hold the batch (streams wait behind it,
			// datagrams are dropped and counted) and try again.
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
		batch = batch[:0]
		rx.report()
	}
	for {
		select {
		case l, ok := <-rx.queue:
			if !ok {
				flush()
				return
			}
			batch = append(batch, l.entry)
			rx.match(l)
			if len(batch) >= syslogBatch {
				flush()
			}
		case <-tick.C:
			flush()
		}
	}
}

// droppedEntries are the lines stored in place of what was dropped.
func (rx *syslogRx) droppedEntries() []logstore.Entry {
	rx.mu.Lock()
	defer rx.mu.Unlock()
	var out []logstore.Entry
	cfg := rx.t.cfg.Load()
	for addr, ls := range rx.limited {
		e := droppedEntry(ls.host, ls.first, ls.n, cfg.Logs.RateLimit, "")
		e.Line = fmt.Sprintf("hinomi tower: %d syslog messages dropped: %s (%s) sent more than its limit of %d lines a second (logs.rate_limit)", ls.n, addr, ls.host, cfg.Logs.RateLimit)
		e.Fields = map[string]string{"dropped": strconv.Itoa(ls.n), "sender": addr}
		out = append(out, e)
	}
	clear(rx.limited)
	if rx.queueDrop > 0 {
		now := rx.t.now()
		out = append(out, logstore.Entry{Time: now, Host: rx.t.name(), Source: "hinomi", Unit: "hinomi-tower", Priority: 4,
			Line:   fmt.Sprintf("hinomi tower: %d syslog datagrams dropped: they came faster than the log store took them", rx.queueDrop),
			Fields: map[string]string{"dropped": strconv.FormatUint(rx.queueDrop, 10)}})
		rx.queueDrop = 0
	}
	return out
}

// match runs a line through the signatures.
func (rx *syslogRx) match(l syslogLine) {
	rx.matcher.Line(l.text, "syslog", func(ev signatures.Event) {
		rx.mu.Lock()
		defer rx.mu.Unlock()
		name := l.entry.Host
		h := rx.hosts[name]
		if h == nil {
			if len(rx.hosts) >= maxSyslogHosts {
				return
			}
			h = &syslogHost{watch: signatures.NewWatch(256, 30*time.Minute), sent: map[string]string{}}
			rx.hosts[name] = h
		}
		now := rx.t.now()
		h.watch.Add(ev, now)
		h.changed, h.last = true, now
		if len(h.logs) < maxLogRecords {
			h.logs = append(h.logs, wire.Log{Signature: ev.Sig.ID, Mode: ev.Sig.Mode, Severity: ev.Sig.Severity, Title: ev.Sig.Title,
				Source: "syslog", Line: ev.Entry.Message, Fields: ev.Fields})
		}
	})
}

// report sends each host's changed findings (and the lines that matched)
// through ingest, as an agent's batch: then they alert, escalate, resolve
// and are silenced like any other.
func (rx *syslogRx) report() {
	now := rx.t.now()
	type batch struct {
		name string
		env  *wire.Envelope
	}
	var out []batch
	rx.mu.Lock()
	for name, h := range rx.hosts {
		fs := h.watch.Findings(name, now)
		cur := map[string]string{}
		var rec wire.Findings
		for _, f := range fs {
			fp := fingerprintOf(f)
			cur[f.Key] = fp
			if h.sent[f.Key] != fp {
				rec.Open = append(rec.Open, f)
			}
		}
		for k := range h.sent {
			if _, ok := cur[k]; !ok {
				rec.Resolved = append(rec.Resolved, k)
			}
		}
		if len(rec.Open) == 0 && len(rec.Resolved) == 0 && len(h.logs) == 0 {
			if len(fs) == 0 && now.Sub(h.last) > time.Hour {
				delete(rx.hosts, name)
			}
			continue
		}
		host := rx.findingHost(name)
		env := &wire.Envelope{Agent: host, Spool: syslogSpool, Version: "syslog", Sent: now}
		for _, l := range h.logs {
			data, _ := json.Marshal(l)
			env.Records = append(env.Records, wire.Record{Kind: wire.KindLog, Time: now, Data: data})
		}
		if len(rec.Open) > 0 || len(rec.Resolved) > 0 {
			data, _ := json.Marshal(rec)
			env.Records = append(env.Records, wire.Record{Kind: wire.KindFindings, Time: now, Data: data})
		}
		h.logs = nil
		h.sent = cur
		out = append(out, batch{name, env})
	}
	rx.mu.Unlock()
	for _, b := range out {
		if err := rx.t.ingestSyslog(b.env, now); err != nil {
			rx.mu.Lock()
			if h := rx.hosts[b.name]; h != nil {
				h.sent = map[string]string{} // all of it again next time
			}
			rx.mu.Unlock()
		}
	}
}

// findingHost is the host a syslog sender's findings are on: its name,
// unless an agent goes by that name (whose spool must not be confused
// with the receiver's).
func (rx *syslogRx) findingHost(name string) string {
	for _, a := range rx.t.cfg.Load().Agents {
		if a.Name == name {
			return name + " (syslog)"
		}
	}
	return name
}

// ingestSyslog stores a syslog host's batch as an agent's.
func (t *Tower) ingestSyslog(env *wire.Envelope, now time.Time) error {
	unlock := t.in.lockAgent(env.Agent)
	defer unlock()
	t.mu.Lock()
	next := uint64(now.UnixNano())
	if h := t.hosts[env.Agent]; h != nil && h.Spool == syslogSpool && h.Acked >= next {
		next = h.Acked + 1
	}
	t.mu.Unlock()
	for i := range env.Records {
		env.Records[i].Seq = next + uint64(i)
	}
	_, err := t.in.ingest(context.Background(), env, "", now)
	if err != nil && t.oncePerMinute("syslog ingest") {
		t.log.Error("storing a syslog host's findings", "host", env.Agent, "err", err)
	}
	t.kick()
	return err
}

func fingerprintOf(f finding.Finding) string { return f.Severity.String() + "|" + f.Key }

package probe

import (
	"context"
	"crypto/tls"
	"net"
	"time"
)

func runTCP(ctx context.Context, s *Spec, env *Env, o *observation, _ map[string]string) error {
	start := time.Now()
	conn, err := env.dialer().DialContext(ctx, "tcp", s.Target)
	if err != nil {
		return err
	}
	o.responseTime, o.hasRT = time.Since(start), true
	o.connected = true
	o.ip = remoteIP(conn.RemoteAddr())
	return conn.Close()
}

// runTLS connects and completes a handshake on any port; [RESPONSE_TIME] covers both.
func runTLS(ctx context.Context, s *Spec, env *Env, o *observation, values map[string]string) error {
	host, _, _ := net.SplitHostPort(s.Target)
	d := &tls.Dialer{NetDialer: env.dialer(), Config: &tls.Config{
		ServerName:         host,
		RootCAs:            env.RootCAs,
		InsecureSkipVerify: s.InsecureSkipVerify,
	}}
	start := time.Now()
	conn, err := d.DialContext(ctx, "tcp", s.Target)
	if err != nil {
		return err
	}
	o.responseTime, o.hasRT = time.Since(start), true
	o.connected = true
	o.ip = remoteIP(conn.RemoteAddr())
	state := conn.(*tls.Conn).ConnectionState()
	values["tls_version"] = tls.VersionName(state.Version)
	recordCert(o, state.PeerCertificates, env.now(), values)
	return conn.Close()
}

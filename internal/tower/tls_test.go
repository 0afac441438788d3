package tower

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/hinomi/hinomi/internal/web"
	"github.com/hinomi/hinomi/internal/wire"
)

// testCA signs the tower's certificates in these tests, as a private CA would.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "hinomi test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// issue writes a certificate for 127.0.0.1 with the given serial and its
// key to certFile and keyFile.
func (ca *testCA) issue(t *testing.T, serial int64, certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "tower.test"},
		DNSNames: []string{"tower.test"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	writeFile(t, keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}))
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	// Renamed into place, as certbot and lego replace their files.
	tmp := path + ".new"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// servedSerial opens a new TLS connection and returns the serial of the
// certificate the tower presented.
func servedSerial(t *testing.T, addr string, pool *x509.CertPool) int64 {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
}

func TestTowerServesTLS(t *testing.T) {
	sqliteOnly(t, "it reloads a configuration file that names no store")
	dir := t.TempDir()
	ca := newTestCA(t)
	certFile, keyFile := filepath.Join(dir, "fullchain.pem"), filepath.Join(dir, "privkey.pem")
	ca.issue(t, 1001, certFile, keyFile)
	cfgFile := filepath.Join(dir, "tower.yaml")
	writeFile(t, cfgFile, []byte("listen: 127.0.0.1:0\ndata_dir: "+filepath.Join(dir, "data")+"\napi_token: "+apiToken+
		"\nagents:\n  - {name: pve1, token: "+tokenA+"}\ntls:\n  cert_file: "+certFile+"\n  key_file: "+keyFile+"\n"))
	cfg, err := LoadConfig(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	tw, err := newTestTower(t, cfg, Options{Log: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte("ops own passphrase here"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	site, err := web.New(tw.Web(), web.Options{Users: []web.User{{Name: "ops", PasswordHash: string(hash)}}})
	if err != nil {
		t.Fatal(err)
	}
	tw.SetUI(site.Handler())
	addr := runListening(t, tw)
	base := "https://" + addr.String()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool}}}

	// An agent's batch, as the agent sends it: gzip JSON with its token.
	var body bytes.Buffer
	zw := gzip.NewWriter(&body)
	zw.Write(batch("pve1", "s1", 1, 2, 3))
	zw.Close()
	req, _ := http.NewRequest(http.MethodPost, base+wire.Path, &body)
	req.Header.Set("Authorization", "Bearer "+tokenA)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Content-Encoding", "gzip")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var reply wire.Reply
	json.NewDecoder(resp.Body).Decode(&reply)
	resp.Body.Close()
	if resp.StatusCode != 200 || reply.Acked != 3 {
		t.Fatalf("ingest over https: got %d acked %d; want 200 acked 3", resp.StatusCode, reply.Acked)
	}
	if resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 {
		t.Fatalf("ingest was not served over TLS 1.2 or later: %+v", resp.TLS)
	}

	// The API, as the CLI reads it.
	req, _ = http.NewRequest(http.MethodGet, base+"/api/v1/hosts", nil)
	req.Header.Set("Authorization", "Bearer "+apiToken)
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"pve1"`) {
		t.Fatalf("GET /api/v1/hosts over https: got %d %s", resp.StatusCode, b)
	}

	// The console's session cookie is Secure without secure_cookies.
	req, _ = http.NewRequest(http.MethodPost, base+"/console/login", strings.NewReader(url.Values{"name": {"ops"}, "password": {"ops own passphrase here"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	noRedirect := *client
	noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err = noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if cs := resp.Cookies(); resp.StatusCode != http.StatusSeeOther || len(cs) == 0 || !cs[0].Secure {
		t.Fatalf("console sign-in over https: got %d, cookies %v; want 303 and a Secure session cookie", resp.StatusCode, resp.Header.Values("Set-Cookie"))
	}

	// Plain HTTP and TLS 1.1 are refused.
	if resp, err := http.Get("http://" + addr.String() + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatal("plain HTTP got 200 from a TLS tower")
		}
	}
	// The server logs the refused handshake after its reply: poll.
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(logs.String(), "level=WARN msg=\"http: TLS handshake error"); {
		if time.Now().After(deadline) {
			t.Fatalf("the plain HTTP request is not in the tower's log:\n%s", logs.String())
		}
		time.Sleep(10 * time.Millisecond) // polling a condition with a deadline
	}
	if c, err := tls.Dial("tcp", addr.String(), &tls.Config{RootCAs: ca.pool, MaxVersion: tls.VersionTLS11}); err == nil {
		c.Close()
		t.Fatal("a TLS 1.1 handshake succeeded; want TLS 1.2 at least")
	}

	if got := servedSerial(t, addr.String(), ca.pool); got != 1001 {
		t.Fatalf("served serial %d; want 1001", got)
	}
	// A connection open across the reload keeps working.
	open, err := tls.Dial("tcp", addr.String(), &tls.Config{RootCAs: ca.pool, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()

	// Renewed: the files are replaced and the tower reloads.
	ca.issue(t, 1002, certFile, keyFile)
	if err := tw.Reload(cfgFile); err != nil {
		t.Fatal(err)
	}
	if got := servedSerial(t, addr.String(), ca.pool); got != 1002 {
		t.Fatalf("after reload a new connection got serial %d; want 1002", got)
	}
	if !strings.Contains(logs.String(), "serial=3ea") { // 1002 in hex
		t.Errorf("the log does not name the new certificate's serial:\n%s", logs.String())
	}
	if _, err := io.WriteString(open, "GET /healthz HTTP/1.1\r\nHost: tower.test\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	r, err := http.ReadResponse(bufio.NewReader(open), nil)
	if err != nil {
		t.Fatalf("the connection open before the reload broke: %v", err)
	}
	r.Body.Close()
	if r.StatusCode != 200 || open.ConnectionState().PeerCertificates[0].SerialNumber.Int64() != 1001 {
		t.Fatalf("old connection: got %d, serial %v; want 200 on the old certificate", r.StatusCode, open.ConnectionState().PeerCertificates[0].SerialNumber)
	}

	// A key that is not the certificate's: refused, the served pair stays.
	otherKey := filepath.Join(dir, "other.pem")
	ca.issue(t, 1003, filepath.Join(dir, "other-cert.pem"), otherKey)
	good, _ := os.ReadFile(keyFile)
	other, _ := os.ReadFile(otherKey)
	writeFile(t, keyFile, other)
	err = tw.Reload(cfgFile)
	if err == nil || !strings.Contains(err.Error(), "tls.key_file") || !strings.Contains(err.Error(), "is not the private key of the certificate") ||
		!strings.Contains(err.Error(), "line 8") {
		t.Fatalf("reload with a mismatched key: got %v; want the line and tls.key_file", err)
	}
	if got := servedSerial(t, addr.String(), ca.pool); got != 1002 {
		t.Fatalf("after a refused reload a new connection got serial %d; want 1002 still", got)
	}
	// TLS cannot be turned off by a reload: the listener speaks it.
	plainCfg := filepath.Join(dir, "plain.yaml")
	writeFile(t, plainCfg, []byte("listen: 127.0.0.1:0\ndata_dir: "+filepath.Join(dir, "data")+"\napi_token: "+apiToken+
		"\nagents:\n  - {name: pve1, token: "+tokenA+"}\n"))
	if err := tw.Reload(plainCfg); err == nil || !strings.Contains(err.Error(), "tls cannot be removed on reload") {
		t.Fatalf("reload without tls: got %v; want it refused", err)
	}
	if got := servedSerial(t, addr.String(), ca.pool); got != 1002 {
		t.Fatalf("after a refused reload a new connection got serial %d; want 1002 still", got)
	}
	// A missing certificate file: refused likewise.
	writeFile(t, keyFile, good)
	os.Remove(certFile)
	if err := tw.Reload(cfgFile); err == nil || !strings.Contains(err.Error(), "tls.cert_file") || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("reload with the certificate missing: got %v", err)
	}
	if got := servedSerial(t, addr.String(), ca.pool); got != 1002 {
		t.Fatalf("after a refused reload a new connection got serial %d; want 1002 still", got)
	}
}

func TestTLSConfigErrors(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t)
	cert, key := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	ca.issue(t, 7, cert, key)
	ca.issue(t, 8, filepath.Join(dir, "c2.pem"), filepath.Join(dir, "k2.pem"))
	head := "data_dir: /tmp/x\nagents: [{name: a, token: " + tokenA + "}]\ntls:\n"
	for _, tc := range []struct{ tls, want string }{
		{"  cert_file: " + cert + "\n", "line 3: tls.key_file: required with tls.cert_file"},
		{"  key_file: " + key + "\n", "line 3: tls.cert_file: required with tls.key_file"},
		{"  cert_file: " + dir + "/none.pem\n  key_file: " + key + "\n", "line 4: tls.cert_file: " + dir + "/none.pem: no such file"},
		{"  cert_file: " + cert + "\n  key_file: " + dir + "/k2.pem\n", "line 5: tls.key_file: " + dir + "/k2.pem is not the private key of the certificate in " + cert},
		{"  cert_file: " + key + "\n  key_file: " + key + "\n", "line 4: tls.cert_file: " + key + " holds no PEM certificate"},
		{"  cert_file: " + cert + "\n  key_file: " + cert + "\n", "line 5: tls.key_file"},
		{"  certfile: " + cert + "\n", `unknown field "certfile" under tls`},
	} {
		_, err := ParseConfig([]byte(head+tc.tls), "tower.yaml")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("tls:\n%s got %v; want %q", tc.tls, err, tc.want)
		}
	}
	c, err := ParseConfig([]byte(head+"  cert_file: "+cert+"\n  key_file: "+key+"\n"), "tower.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.cert == nil || c.cert.Leaf.SerialNumber.Int64() != 7 {
		t.Fatalf("the pair was not loaded: %+v", c.cert)
	}
}

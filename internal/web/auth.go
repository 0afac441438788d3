package web

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"log/slog"
	"mime"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// User may sign in to the console.
type User struct {
	Name         string `yaml:"name"`
	PasswordHash string `yaml:"password_hash"` // bcrypt: hinomi hash-password, or argon2id
	// PasswordHashFile holds PasswordHash instead (read by the tower's
	// config loading).
	PasswordHashFile string `yaml:"password_hash_file"`
}

const (
	sessionCookie = "hinomi_session"
	// A client address or a user name may fail freeAttempts times; then
	// each further attempt waits firstDelay, doubling up to maxDelay,
	// after the latest failure. An hour without failures forgets them.
	freeAttempts = 5
	firstDelay   = 30 * time.Second
	maxDelay     = 15 * time.Minute
	forgetAfter  = time.Hour
)

type session struct {
	user    string
	csrf    string
	expires time.Time
}

// failures are one client's or one user's failed sign-ins in a row.
type failures struct {
	n    int
	last time.Time
}

// wait is how long after the latest failure the next attempt must wait.
func (f failures) wait() time.Duration {
	if f.n < freeAttempts {
		return 0
	}
	d := firstDelay
	for i := freeAttempts; i < f.n && d < maxDelay; i++ {
		d *= 2
	}
	return min(d, maxDelay)
}

// auth keeps console sessions and the sign-in limits in memory: a tower
// restart signs everyone out, which is acceptable for a small team.
type auth struct {
	users   map[string]string
	ttl     time.Duration
	secure  bool
	proxies []netip.Prefix
	log     *slog.Logger
	now     func() time.Time

	mu       sync.Mutex
	sessions map[string]*session
	// failed is keyed by "client " + address and "user " + name; only
	// configured names are counted, so guessing names cannot fill it.
	failed map[string]failures
}

func newAuth(users []User, ttl time.Duration, secure bool, proxies []netip.Prefix, log *slog.Logger, now func() time.Time) *auth {
	a := &auth{users: map[string]string{}, ttl: ttl, secure: secure, proxies: proxies, log: log, now: now,
		sessions: map[string]*session{}, failed: map[string]failures{}}
	for _, u := range users {
		a.users[u.Name] = u.PasswordHash
	}
	return a
}

func randomToken() string {
	var b [24]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// dummyHash keeps the time of a login with an unknown name equal to one
// with a wrong password.
// Cost 12 is what hinomi hash-password makes. It is a constant: computing
// it at start-up cost every hinomi command (doctor included) about 250 ms.
var dummyHash = []byte("$2a$12$lFQuyhQDLHP.qa8qrfrjru7NNRnqPL1KPSTCGk2PW77OdWtEuajzS")

// checkUnknown spends on a name that is no user the time a wrong
// password costs: a check against a configured user's hash (its result
// ignored), so names cannot be told from their answer's speed whatever
// the hashes' cost.
func (a *auth) checkUnknown(password string) {
	for _, h := range a.users {
		_ = checkPassword(h, password)
		return
	}
	_ = bcrypt.CompareHashAndPassword(dummyHash, []byte(password))
}

// login checks a name and password. retry > 0 means the attempt was
// refused unchecked: the client or the user must wait that long.
func (a *auth) login(w http.ResponseWriter, r *http.Request, name, password string) (ok bool, retry time.Duration) {
	client := a.clientIP(r)
	now := a.now()
	hash, known := a.users[name]
	keys := []string{"client " + client}
	if known {
		keys = append(keys, "user "+name)
	}
	a.mu.Lock()
	for _, k := range keys {
		f := a.failed[k]
		if now.Sub(f.last) >= forgetAfter {
			f = failures{}
		}
		if d := f.last.Add(f.wait()).Sub(now); d > 0 {
			retry = max(retry, d)
		}
	}
	if retry > 0 {
		a.mu.Unlock()
		a.log.Warn("console sign-in refused: too many failures", "user", name, "client", client, "retry_after", retry.Round(time.Second))
		return false, retry
	}
	// Count the attempt as a failure before the slow check, so parallel
	// guesses cannot all pass the limit; a success clears it.
	counts := make([]int, len(keys))
	for i, k := range keys {
		f := a.failed[k]
		if now.Sub(f.last) >= forgetAfter {
			f = failures{}
		}
		f.n++
		f.last = now
		a.failed[k] = f
		counts[i] = f.n
	}
	a.pruneLocked(now)
	a.mu.Unlock()
	if !known {
		a.checkUnknown(password)
	}
	if !known || !checkPassword(hash, password) {
		args := []any{"user", name, "client", client, "failures_from_client", counts[0]}
		if known {
			args = append(args, "failures_for_user", counts[1])
		} else {
			args = append(args, "known_user", false)
		}
		a.log.Warn("console sign-in failed", args...)
		return false, 0
	}
	id := randomToken()
	a.mu.Lock()
	for _, k := range keys {
		delete(a.failed, k)
	}
	a.sessions[id] = &session{user: name, csrf: randomToken(), expires: now.Add(a.ttl)}
	a.mu.Unlock()
	a.log.Info("console sign-in", "user", name, "client", client)
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: id, Path: "/console", HttpOnly: true,
		Secure: a.secureRequest(r), SameSite: http.SameSiteStrictMode, MaxAge: int(a.ttl.Seconds())})
	return true, 0
}

// pruneLocked drops forgotten failures once the map grows, so addresses
// that came and went do not pile up. a.mu is held.
func (a *auth) pruneLocked(now time.Time) {
	if len(a.failed) < 1024 {
		return
	}
	for k, f := range a.failed {
		if now.Sub(f.last) >= forgetAfter {
			delete(a.failed, k)
		}
	}
}

func (a *auth) logout(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(sessionCookie); err == nil {
		a.mu.Lock()
		delete(a.sessions, c.Value)
		a.mu.Unlock()
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/console", MaxAge: -1, HttpOnly: true,
		Secure: a.secureRequest(r), SameSite: http.SameSiteStrictMode})
}

// session returns the signed-in session of a request, or nil.
func (a *auth) session(r *http.Request) *session {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.sessions[c.Value]
	if s == nil || a.now().After(s.expires) {
		delete(a.sessions, c.Value)
		return nil
	}
	return s
}

// checkPost refuses a state-changing request that is not from the
// console itself: the CSRF token of the session must come with the form,
// and a browser's Origin (or Referer) must be this host.
func checkPost(r *http.Request, s *session) bool {
	if subtle.ConstantTimeCompare([]byte(r.PostFormValue("csrf")), []byte(s.csrf)) != 1 {
		return false
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		origin = r.Header.Get("Referer")
	}
	if origin == "" {
		return true // not a browser; the token is proof enough
	}
	u, err := url.Parse(origin)
	return err == nil && u.Host == r.Host
}

// isForm: the body is an HTML form's. A text/plain body, which a page of
// any site may send without asking, is refused.
func isForm(r *http.Request) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && (mt == "application/x-www-form-urlencoded" || mt == "multipart/form-data")
}

// fromProxy: the request came from a configured trusted proxy.
func (a *auth) fromProxy(r *http.Request) bool {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	return err == nil && a.trusted(ap.Addr())
}

func (a *auth) trusted(ip netip.Addr) bool {
	for _, p := range a.proxies {
		if p.Contains(ip.Unmap()) {
			return true
		}
	}
	return false
}

// clientIP is the address a request came from: the peer, or behind
// trusted proxies the nearest X-Forwarded-For hop that is not one of
// them. Anyone else's X-Forwarded-For is ignored, so a client cannot
// pick the address its failures are counted under.
func (a *auth) clientIP(r *http.Request) string {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	ip := ap.Addr().Unmap()
	if !a.trusted(ip) {
		return ip.String()
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break
		}
		ip = hop.Unmap()
		if !a.trusted(ip) {
			break
		}
	}
	return ip.String()
}

// secureRequest: the browser reached the console over TLS, directly or
// through a trusted proxy that says so (X-Forwarded-Proto: https).
func (a *auth) secureRequest(r *http.Request) bool {
	return a.secure || r.TLS != nil ||
		a.fromProxy(r) && strings.EqualFold(strings.TrimSpace(strings.Split(r.Header.Get("X-Forwarded-Proto"), ",")[0]), "https")
}

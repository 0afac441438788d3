package web

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"mime"
	"net"
	"net/http"
	"net/url"
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
	loginWindow   = 5 * time.Minute
	loginFailures = 5
)

type session struct {
	user    string
	csrf    string
	expires time.Time
}

// auth keeps console sessions and the login rate limit in memory: a tower
// restart signs everyone out, which is acceptable for a small team.
type auth struct {
	users    map[string]string
	ttl      time.Duration
	secure   bool
	mu       sync.Mutex
	sessions map[string]*session
	failures map[string][]time.Time
	now      func() time.Time
}

func newAuth(users []User, ttl time.Duration, secure bool, now func() time.Time) *auth {
	a := &auth{users: map[string]string{}, ttl: ttl, secure: secure, sessions: map[string]*session{}, failures: map[string][]time.Time{}, now: now}
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

// login checks a name and password; allowed is false when the client is
// rate-limited.
func (a *auth) login(w http.ResponseWriter, r *http.Request, name, password string) (ok, allowed bool) {
	ip := clientIP(r)
	now := a.now()
	a.mu.Lock()
	recent := a.failures[ip][:0]
	for _, t := range a.failures[ip] {
		if now.Sub(t) < loginWindow {
			recent = append(recent, t)
		}
	}
	a.failures[ip] = recent
	if len(recent) >= loginFailures {
		a.mu.Unlock()
		return false, false
	}
	// Count the attempt as a failure before the slow check, so parallel
	// guesses cannot all pass the limit; a success takes it back.
	a.failures[ip] = append(a.failures[ip], now)
	hash, known := a.users[name]
	a.mu.Unlock()
	if !known {
		_ = bcrypt.CompareHashAndPassword(dummyHash, []byte(password))
	}
	if !known || !checkPassword(hash, password) {
		return false, true
	}
	id := randomToken()
	a.mu.Lock()
	if f := a.failures[ip]; len(f) > 0 {
		a.failures[ip] = f[:len(f)-1]
	}
	a.sessions[id] = &session{user: name, csrf: randomToken(), expires: now.Add(a.ttl)}
	a.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: id, Path: "/console", HttpOnly: true,
		Secure: a.secure || r.TLS != nil, SameSite: http.SameSiteStrictMode, MaxAge: int(a.ttl.Seconds())})
	return true, true
}

func (a *auth) logout(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(sessionCookie); err == nil {
		a.mu.Lock()
		delete(a.sessions, c.Value)
		a.mu.Unlock()
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/console", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
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

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

package web

import (
	"runtime"
	"strings"
	"sync"
)

// publishedPasswords are passwords anyone may try first: hinomi's own
// examples and the most common ones. Each costs one hash check per user
// at config load, so the list stays short.
var publishedPasswords = []string{
	"change this password", "a long password", "correct horse battery staple", // README and docs
	"admin", "password", "changeme", "hinomi", "123456", "12345678", "qwerty", "letmein", "secret",
}

// exampleHashes are hashes printed in hinomi's README and docs, by the
// password they are of.
var exampleHashes = map[string]string{
	"$2a$12$xkZ/kFgWs5/jbArf3b6mdO05b/VXqJ9Ex.XLj2Yc2jtWN9u8IhuBC": "change this password",
}

// PublishedPassword reports which published password hash is of, if any:
// one of hinomi's examples, one of the most common passwords, or the
// user's own name. The checks run in parallel; each is one login's work.
func PublishedPassword(name, hash string) (string, bool) {
	if pw, ok := exampleHashes[hash]; ok {
		return pw, true
	}
	if ValidHash(hash) != nil {
		return "", false
	}
	candidates := append([]string{name}, publishedPasswords...)
	workers := runtime.GOMAXPROCS(0)
	if strings.HasPrefix(hash, "$argon2id$") {
		// Each check holds its memory (up to 1 GiB): one at a time.
		workers = 1
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		found = -1
		next  = make(chan int)
	)
	for range min(workers, len(candidates)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if checkPassword(hash, candidates[i]) {
					mu.Lock()
					if found < 0 || i < found {
						found = i
					}
					mu.Unlock()
				}
			}
		}()
	}
	for i := range candidates {
		next <- i
	}
	close(next)
	wg.Wait()
	if found < 0 {
		return "", false
	}
	return candidates[found], true
}

package web

import (
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// checkPassword verifies a password against a bcrypt hash ($2a$, $2b$,
// $2y$) or an argon2id hash in the PHC string format that the argon2 tool
// and most libraries print: $argon2id$v=19$m=65536,t=3,p=4$SALT$HASH.
// A hash that is not valid (ValidHash) never matches: its parameters
// could ask for minutes of work or gigabytes of memory per login.
func checkPassword(hash, password string) bool {
	if ValidHash(hash) != nil {
		return false
	}
	if strings.HasPrefix(hash, "$argon2id$") {
		ok, err := checkArgon2id(hash, password)
		return err == nil && ok
	}
	return bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) == nil
}

// The work one login may cost: bcrypt cost 14 is about a second here
// (hinomi hash-password makes 12); argon2id at most 1 GiB and 10 passes.
const (
	maxBcryptCost   = 14
	maxArgon2Memory = 1 << 20 // KiB
	maxArgon2Passes = 10
)

// ValidHash reports whether a configured password hash can be used.
func ValidHash(hash string) error {
	switch {
	case strings.HasPrefix(hash, "$2"):
		cost, err := bcrypt.Cost([]byte(hash))
		if err != nil {
			return err
		}
		if cost > maxBcryptCost {
			return fmt.Errorf("bcrypt cost %d would make every login take %d times as long as hinomi hash-password's 12; use at most %d", cost, 1<<(cost-12), maxBcryptCost)
		}
		return nil
	case strings.HasPrefix(hash, "$argon2id$"):
		mem, iters, _, _, _, err := parseArgon2id(hash)
		if err != nil {
			return err
		}
		if mem > maxArgon2Memory || iters > maxArgon2Passes {
			return fmt.Errorf("argon2id m=%d,t=%d: at most m=%d (1 GiB) and t=%d, or every login costs that much", mem, iters, maxArgon2Memory, maxArgon2Passes)
		}
		return nil
	}
	return errors.New("not a bcrypt ($2b$…) or argon2id ($argon2id$…) hash")
}

func parseArgon2id(hash string) (mem uint32, iters uint32, threads uint8, salt, key []byte, err error) {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return 0, 0, 0, nil, nil, errors.New("argon2id hash: want $argon2id$v=19$m=…,t=…,p=…$salt$hash")
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return 0, 0, 0, nil, nil, fmt.Errorf("argon2id hash: version %q, want v=%d", parts[2], argon2.Version)
	}
	var p uint32
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &mem, &iters, &p); err != nil || p == 0 || p > 255 || iters == 0 || mem < 8 {
		return 0, 0, 0, nil, nil, fmt.Errorf("argon2id hash: parameters %q", parts[3])
	}
	if salt, err = base64.RawStdEncoding.DecodeString(parts[4]); err != nil {
		return 0, 0, 0, nil, nil, fmt.Errorf("argon2id hash: salt: %w", err)
	}
	if key, err = base64.RawStdEncoding.DecodeString(parts[5]); err != nil || len(key) < 16 {
		return 0, 0, 0, nil, nil, errors.New("argon2id hash: the hash part is not base64 of at least 16 bytes")
	}
	return mem, iters, uint8(p), salt, key, nil
}

func checkArgon2id(hash, password string) (bool, error) {
	mem, iters, threads, salt, key, err := parseArgon2id(hash)
	if err != nil {
		return false, err
	}
	got := argon2.IDKey([]byte(password), salt, iters, mem, threads, uint32(len(key)))
	return subtle.ConstantTimeCompare(got, key) == 1, nil
}

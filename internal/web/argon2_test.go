package web

import (
	"encoding/base64"
	"fmt"
	"testing"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

func TestPasswordHashes(t *testing.T) {
	salt := []byte("0123456789abcdef")
	key := argon2.IDKey([]byte("correct horse"), salt, 2, 64*1024, 2, 32)
	a2 := fmt.Sprintf("$argon2id$v=19$m=65536,t=2,p=2$%s$%s", base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
	bc, _ := bcrypt.GenerateFromPassword([]byte("correct horse"), bcrypt.MinCost)
	for _, h := range []string{a2, string(bc)} {
		if err := ValidHash(h); err != nil {
			t.Errorf("ValidHash(%q): %v", h, err)
		}
		if !checkPassword(h, "correct horse") {
			t.Errorf("%.12s…: right password refused", h)
		}
		if checkPassword(h, "correct horsf") {
			t.Errorf("%.12s…: wrong password accepted", h)
		}
	}
	for _, bad := range []string{"", "plain", "$argon2id$v=19$m=65536,t=2,p=2$!!$!!", "$argon2i$v=19$m=1,t=1,p=1$a$b", "$argon2id$v=16$m=65536,t=2,p=2$YQ$YWJjZGVmZ2hpamtsbW5vcA"} {
		if ValidHash(bad) == nil {
			t.Errorf("ValidHash(%q) accepted it", bad)
		}
		if checkPassword(bad, "x") {
			t.Errorf("checkPassword(%q) accepted", bad)
		}
	}
}

func FuzzCheckPassword(f *testing.F) {
	f.Add("$argon2id$v=19$m=65536,t=2,p=2$MDEyMzQ1Njc4OWFiY2RlZg$abc", "x")
	f.Fuzz(func(t *testing.T, hash, pw string) {
		if len(hash) > 200 {
			return
		}
		// A valid hash is expensive by design (and bounded by ValidHash);
		// anything else must be refused, at once.
		if ValidHash(hash) == nil {
			return
		}
		if checkPassword(hash, pw) {
			t.Errorf("an invalid hash %q matched", hash)
		}
	})
}

// A hash asking for too much work is refused at load and never checked.
func TestHashWorkIsBounded(t *testing.T) {
	for _, h := range []string{
		"$000200000000000000000000000000000000$000000000000000000000", // bcrypt cost 20, found by fuzzing
		"$2a$16$lFQuyhQDLHP.qa8qrfrjru7NNRnqPL1KPSTCGk2PW77OdWtEuajzS",
		"$argon2id$v=19$m=4194304,t=2,p=2$MDEyMzQ1Njc4OWFiY2RlZg$MDEyMzQ1Njc4OWFiY2RlZg",
		"$argon2id$v=19$m=65536,t=1000,p=2$MDEyMzQ1Njc4OWFiY2RlZg$MDEyMzQ1Njc4OWFiY2RlZg",
	} {
		if err := ValidHash(h); err == nil {
			t.Errorf("ValidHash(%q) accepted it", h)
		}
		if checkPassword(h, "x") {
			t.Errorf("checkPassword(%q) matched", h)
		}
	}
}

// The stand-in hash for unknown names must cost what a real one costs, or a
// login's duration tells whether the name exists.
func TestDummyHashCost(t *testing.T) {
	cost, err := bcrypt.Cost(dummyHash)
	if err != nil {
		t.Fatal(err)
	}
	if cost != 12 {
		t.Errorf("dummy hash cost %d, hinomi hash-password makes 12", cost)
	}
	if err := bcrypt.CompareHashAndPassword(dummyHash, []byte("hinomi-not-a-user")); err != nil {
		t.Errorf("dummy hash is not a valid bcrypt hash: %v", err)
	}
}

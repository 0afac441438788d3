package web

import (
	"encoding/base64"
	"fmt"
	"testing"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

func TestPublishedPassword(t *testing.T) {
	argon := func(pw string) string {
		salt := []byte("0123456789abcdef")
		key := argon2.IDKey([]byte(pw), salt, 1, 8*1024, 1, 32)
		return fmt.Sprintf("$argon2id$v=19$m=8192,t=1,p=1$%s$%s", base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
	}
	bc := func(pw string) string {
		h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		return string(h)
	}
	for _, tc := range []struct {
		name, hash, want string
		published        bool
	}{
		{"mika", "$2a$12$xkZ/kFgWs5/jbArf3b6mdO05b/VXqJ9Ex.XLj2Yc2jtWN9u8IhuBC", "change this password", true},
		{"mika", bc("password"), "password", true},
		{"mika", bc("secret"), "secret", true}, // the last of the list
		{"mika", argon("changeme"), "changeme", true},
		{"ops", argon("ops"), "ops", true},
		{"mika", bc("seven words only mika knows, really"), "", false},
		{"mika", argon("seven words only mika knows, really"), "", false},
		{"mika", "not a hash", "", false},
	} {
		got, ok := PublishedPassword(tc.name, tc.hash)
		if got != tc.want || ok != tc.published {
			t.Errorf("PublishedPassword(%s, %.20s…) = %q, %v; want %q, %v", tc.name, tc.hash, got, ok, tc.want, tc.published)
		}
	}
}

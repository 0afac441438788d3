package logstore

import (
	"bytes"
	"unicode"
	"unicode/utf8"
)

// isTokenRune reports whether r belongs to a word: the search matches whole
// words of letters, digits and _, as VictoriaLogs does.
func isTokenRune(r rune) bool {
	if r < 0x80 {
		return r == '_' || ('0' <= r && r <= '9') || ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z')
	}
	return unicode.IsLetter(r) || unicode.IsDigit(r)
}

// lowerInto appends s in lower case to dst: a byte loop for ASCII, the
// Unicode mapping otherwise.
func lowerInto(dst, s []byte) []byte {
	for _, c := range s {
		if c >= utf8.RuneSelf {
			return append(dst, bytes.ToLower(s)...)
		}
	}
	for _, c := range s {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}

// forEachToken calls fn with each word of s.
func forEachToken(s []byte, fn func(tok []byte)) {
	start := -1
	for i := 0; i < len(s); {
		c := s[i]
		var tok bool
		size := 1
		if c < utf8.RuneSelf {
			tok = c == '_' || ('0' <= c && c <= '9') || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z')
		} else {
			var r rune
			r, size = utf8.DecodeRune(s[i:])
			tok = r != utf8.RuneError && isTokenRune(r)
		}
		if tok {
			if start < 0 {
				start = i
			}
		} else if start >= 0 {
			fn(s[start:i])
			start = -1
		}
		i += size
	}
	if start >= 0 {
		fn(s[start:])
	}
}

// tokenBoundaryBefore reports whether position i of s starts a word (or is
// not inside one): the rune before it is not a word rune.
func tokenBoundaryBefore(s []byte, i int) bool {
	if i == 0 {
		return true
	}
	r, _ := utf8.DecodeLastRune(s[:i])
	return !isTokenRune(r)
}

func tokenBoundaryAfter(s []byte, i int) bool {
	if i >= len(s) {
		return true
	}
	r, _ := utf8.DecodeRune(s[i:])
	return !isTokenRune(r)
}

// asciiLower maps each byte to itself, A-Z to a-z.
var asciiLower = func() (t [256]byte) {
	for i := range t {
		t[i] = byte(i)
		if 'A' <= i && i <= 'Z' {
			t[i] = byte(i + 'a' - 'A')
		}
	}
	return t
}()

// foldASCII returns src with A-Z in lower case, in dst's storage. Bytes of
// other runes are left alone: an ASCII word found in the result is found
// in the Unicode lower case too (and the other way round but for a few
// runes, such as the Kelvin sign, whose lower case is ASCII).
func foldASCII(dst, src []byte) []byte {
	if cap(dst) < len(src) {
		dst = make([]byte, len(src))
	}
	dst = dst[:len(src)]
	for i, c := range src {
		dst[i] = asciiLower[c]
	}
	return dst
}

package logstore

import (
	"unicode"
)

// isTokenRune reports whether r belongs to a word: the search matches whole
// words of letters, digits and _, as VictoriaLogs does.
func isTokenRune(r rune) bool {
	if r < 0x80 {
		return r == '_' || ('0' <= r && r <= '9') || ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z')
	}
	return unicode.IsLetter(r) || unicode.IsDigit(r)
}

package notify

import (
	"fmt"
	"time"
)

// TestMessage is what `hinomi notify test` sends: plainly a test, about
// nothing that is wrong, from the given host, so a person who receives it
// knows the channel works and can tell it from an alert.
func TestMessage(channel, host string, now time.Time) Message {
	return Message{
		Key:      "hinomi-test/" + channel,
		Host:     host,
		Title:    "Test message from hinomi",
		State:    Firing,
		Severity: "info",
		Started:  now,
		Now:      now,
		Summary:  fmt.Sprintf("This tests channel %q: if you read it, hinomi's alerts reach you here. Nothing is wrong.", channel),
	}
}

// Stateful reports whether a channel type keeps an alert open on its side
// (an incident, an alert) until told it is resolved: after a test, such a
// channel is sent the resolution too.
func Stateful(typ string) bool {
	switch typ {
	case TypePagerDuty, TypeOpsgenie, TypeAlertmanager:
		return true
	}
	return false
}

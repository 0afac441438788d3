package agent

import (
	"fmt"
	"net/url"
	"strings"
)

// TowerURL checks a tower's base URL as given on a command line and
// returns it without a trailing slash. A URL without its scheme
// ("tower.lan:7450") is refused with the URL that was probably meant,
// rather than failing at every delivery with Go's URL parser's words.
func TowerURL(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", fmt.Errorf("empty tower URL: want one such as http://tower.lan:7450")
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		if !strings.Contains(s, "://") {
			return "", fmt.Errorf("tower URL %q has no scheme: did you mean http://%s ?", s, s)
		}
		return "", fmt.Errorf("tower URL %q: want http:// or https:// and a host, e.g. http://tower.lan:7450", s)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("tower URL %q: want the tower's base URL, without a query or fragment", u.Redacted())
	}
	return strings.TrimRight(s, "/"), nil
}

package notify

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
)

// envRef is a reference to an environment variable in a secret setting.
var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// Secret reads one secret setting, so that the YAML need not hold it:
// the value as written, or the content of file (its trailing newline
// trimmed). ${NAME} in either is replaced by the environment variable
// NAME, e.g. file: ${CREDENTIALS_DIRECTORY}/api_token under systemd's
// LoadCredential=. Errors name key (or key_file) and the file, never the
// secret.
func Secret(key, value, file string, lookup func(string) (string, bool)) (string, error) {
	if file == "" {
		return expandEnv(key, value, lookup)
	}
	fileKey := key + "_file"
	if value != "" {
		return "", fmt.Errorf("%s: set either %s or %s, not both", fileKey, key, fileKey)
	}
	path, err := expandEnv(fileKey, file, lookup)
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the file is named already
		}
		return "", fmt.Errorf("%s: cannot read the secret file %s: %v", fileKey, path, err)
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" {
		return "", fmt.Errorf("%s: the secret file %s is empty", fileKey, path)
	}
	return s, nil
}

func expandEnv(key, s string, lookup func(string) (string, bool)) (string, error) {
	var missing []string
	out := envRef.ReplaceAllStringFunc(s, func(ref string) string {
		name := envRef.FindStringSubmatch(ref)[1]
		v, ok := lookup(name)
		if !ok || v == "" {
			missing = append(missing, name)
		}
		return v
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("%s: the environment variable %s is not set", key, strings.Join(missing, ", "))
	}
	return out, nil
}

// secretFields are each channel type's secret settings, by YAML key.
func (ch *Channel) secretFields() map[string][2]*string {
	switch ch.Type {
	case TypeWebhook:
		return map[string][2]*string{"url": {&ch.URL, &ch.URLFile}, "bearer_token": {&ch.BearerToken, &ch.BearerTokenFile}}
	case TypeDiscord, TypeSlack:
		return map[string][2]*string{"url": {&ch.URL, &ch.URLFile}}
	case TypeTelegram:
		return map[string][2]*string{"bot_token": {&ch.BotToken, &ch.BotTokenFile}}
	case TypeNtfy:
		return map[string][2]*string{"token": {&ch.Token, &ch.TokenFile}}
	case TypeSMTP:
		return map[string][2]*string{"password": {&ch.Password, &ch.PasswordFile}}
	}
	return nil
}

// ReadSecrets fills the channel's secret settings from their *_file keys
// and ${NAME} environment references (Secret). The *_file keys of other
// types are left for Validate to refuse. On error it returns the key at
// fault.
func (ch *Channel) ReadSecrets(lookup func(string) (string, bool)) (key string, err error) {
	fields := ch.secretFields()
	for _, k := range []string{"url", "bearer_token", "bot_token", "token", "password"} {
		f, ok := fields[k]
		if !ok {
			continue
		}
		v, err := Secret(k, *f[0], *f[1], lookup)
		if err != nil {
			if *f[1] != "" {
				k += "_file"
			}
			return k, fmt.Errorf("notify channel %q (%s): %w", ch.Name, ch.Type, err)
		}
		*f[0], *f[1] = v, ""
	}
	return "", nil
}

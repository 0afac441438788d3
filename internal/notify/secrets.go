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

// secretKeys are the YAML keys of every secret setting; each has a
// KEY_file twin that holds it instead.
var secretKeys = []string{"url", "bearer_token", "bot_token", "token", "password", "routing_key", "api_key"}

// secret returns the field holding the secret key and its *_file twin.
func (ch *Channel) secret(key string) (value, file *string) {
	switch key {
	case "url":
		return &ch.URL, &ch.URLFile
	case "bearer_token":
		return &ch.BearerToken, &ch.BearerTokenFile
	case "bot_token":
		return &ch.BotToken, &ch.BotTokenFile
	case "token":
		return &ch.Token, &ch.TokenFile
	case "password":
		return &ch.Password, &ch.PasswordFile
	case "routing_key":
		return &ch.RoutingKey, &ch.RoutingKeyFile
	case "api_key":
		return &ch.APIKey, &ch.APIKeyFile
	}
	panic("notify: unknown secret key " + key)
}

// ReadSecrets fills the channel's secret settings from their *_file keys
// and ${NAME} environment references (Secret). The *_file keys of other
// types are left for Validate to refuse. On error it returns the key at
// fault.
func (ch *Channel) ReadSecrets(lookup func(string) (string, bool)) (key string, err error) {
	kd, ok := kindOf(ch.Type)
	if !ok {
		return "", nil // Validate names the type
	}
	for _, k := range secretKeys {
		if !strings.Contains(" "+kd.fields+" ", " "+k+" ") {
			continue
		}
		value, file := ch.secret(k)
		v, err := Secret(k, *value, *file, lookup)
		if err != nil {
			if *file != "" {
				k += "_file"
			}
			return k, fmt.Errorf("notify channel %q (%s): %w", ch.Name, ch.Type, err)
		}
		*value, *file = v, ""
	}
	return "", nil
}

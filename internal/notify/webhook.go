package notify

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// webhook POSTs an Alertmanager-shaped (version 4) payload, so anything
// that already receives Alertmanager's webhooks can receive hinomi's.
type webhook struct {
	ch     Channel
	client *http.Client
}

func newWebhook(ch Channel, client *http.Client) *webhook { return &webhook{ch: ch, client: client} }

func (w *webhook) Name() string { return w.ch.Name }

// amPayload is Alertmanager's webhook body.
type amPayload struct {
	Version           string            `json:"version"`
	GroupKey          string            `json:"groupKey"`
	TruncatedAlerts   int               `json:"truncatedAlerts"`
	Status            string            `json:"status"`
	Receiver          string            `json:"receiver"`
	GroupLabels       map[string]string `json:"groupLabels"`
	CommonLabels      map[string]string `json:"commonLabels"`
	CommonAnnotations map[string]string `json:"commonAnnotations"`
	ExternalURL       string            `json:"externalURL"`
	Alerts            []amAlert         `json:"alerts"`
}

type amAlert struct {
	Status       string            `json:"status"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
}

// amLabels are the labels and annotations hinomi gives an alert in
// Alertmanager's shape, for its webhook and its API alike. hinomi's own
// labels (alertname, host, severity, key) win over m.Labels.
func amLabels(r rendered, m Message) (labels, annotations map[string]string) {
	labels = map[string]string{}
	for k, v := range m.Labels {
		labels[strings.ToValidUTF8(k, "\uFFFD")] = strings.ToValidUTF8(v, "\uFFFD")
	}
	name := r.runbook
	if name == "" {
		name = r.key
	}
	if name == "" {
		name = "hinomi"
	}
	labels["alertname"] = name
	set := func(k, v string) {
		if v != "" {
			labels[k] = v
		}
	}
	set("host", r.host)
	set("severity", r.severity)
	set("key", r.key)
	annotations = map[string]string{
		"summary":     r.subject,
		"description": r.body,
		"title":       r.title,
		"state":       m.State.String(),
	}
	if r.runbook != "" {
		annotations["runbook"] = r.runbook
	}
	return labels, annotations
}

// alertmanagerPayload maps m onto Alertmanager's shape: status is
// "firing" for Firing and Repeat; endsAt is the zero time while firing
// (as Alertmanager sends it); annotations.summary is the subject line, so
// a receiver that shows only that still shows since when and how long.
// hinomi's own labels (alertname, host, severity, key) win over m.Labels.
func alertmanagerPayload(receiver string, m Message) amPayload {
	r := render(m)
	status := "firing"
	var ends time.Time
	if m.State == Resolved {
		status = "resolved"
		ends = m.Ended
		if ends.IsZero() {
			ends = m.Now
		}
	}
	labels, annotations := amLabels(r, m)
	sum := sha256.Sum256([]byte(m.Key))
	return amPayload{
		Version:           "4",
		GroupKey:          fmt.Sprintf("{}:{key=%q}", r.key),
		Status:            status,
		Receiver:          receiver,
		GroupLabels:       map[string]string{"key": r.key},
		CommonLabels:      labels,
		CommonAnnotations: annotations,
		ExternalURL:       "",
		Alerts: []amAlert{{
			Status:       status,
			Labels:       labels,
			Annotations:  annotations,
			StartsAt:     m.Started.UTC(),
			EndsAt:       ends.UTC(),
			GeneratorURL: r.url,
			Fingerprint:  hex.EncodeToString(sum[:8]),
		}},
	}
}

func (w *webhook) Send(ctx context.Context, m Message) error {
	body, err := json.Marshal(alertmanagerPayload(w.ch.Name, m))
	if err != nil {
		return &SendError{Channel: w.ch.Name, Type: TypeWebhook, Err: err}
	}
	h := http.Header{}
	for k, v := range w.ch.Headers {
		h.Set(k, v)
	}
	if w.ch.BearerToken != "" {
		h.Set("Authorization", "Bearer "+w.ch.BearerToken)
	}
	h.Set("Content-Type", "application/json")
	return post(ctx, w.client, w.ch.Name, TypeWebhook, w.ch.URL, h, body, nil)
}

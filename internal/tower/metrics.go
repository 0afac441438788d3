package tower

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

type metrics struct {
	ingest      *prometheus.HistogramVec
	records     prometheus.Counter
	transitions *prometheus.CounterVec
	sends       *prometheus.CounterVec
	sendSeconds *prometheus.HistogramVec
}

func newMetrics(reg *prometheus.Registry, t *Tower) *metrics {
	m := &metrics{
		ingest: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "hinomi_tower_ingest_seconds", Help: "Time to authenticate, store and acknowledge one agent batch, by result.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}, []string{"result"}),
		records: prometheus.NewCounter(prometheus.CounterOpts{Name: "hinomi_tower_records_received_total", Help: "Records received in accepted batches (resent ones included)."}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hinomi_tower_alert_transitions_total", Help: "Alert state changes by signal kind and event.",
		}, []string{"kind", "event"}),
		sends: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hinomi_tower_notifications_total", Help: "Notification attempts by channel and result (delivered, retry, failed).",
		}, []string{"channel", "result"}),
		sendSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "hinomi_tower_notification_send_seconds", Help: "Time one notification send took, by channel.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12),
		}, []string{"channel"}),
	}
	reg.MustRegister(m.ingest, m.records, m.transitions, m.sends, m.sendSeconds,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "hinomi_tower_hosts_silent", Help: "Hosts whose heartbeat alert is firing.",
	}, func() float64 {
		t.mu.Lock()
		defer t.mu.Unlock()
		n := 0
		for _, a := range t.alerts {
			if a.Kind == "heartbeat" && a.State.Status == "firing" {
				n++
			}
		}
		return float64(n)
	}))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "hinomi_tower_outbox_due", Help: "Notifications waiting in the outbox.",
	}, func() float64 {
		var n float64
		_ = t.store.DB.QueryRow("SELECT count(*) FROM outbox WHERE state = 'due'").Scan(&n)
		return n
	}))
	return m
}

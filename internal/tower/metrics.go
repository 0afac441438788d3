package tower

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

type metrics struct {
	ingest      *prometheus.HistogramVec
	records     prometheus.Counter
	transitions *prometheus.CounterVec
	sends       *prometheus.CounterVec
	sendSeconds *prometheus.HistogramVec
	degraded    prometheus.Gauge
	shed        prometheus.Counter
	leader      prometheus.Gauge
	spooled     prometheus.Gauge
}

func newMetrics(reg, public *prometheus.Registry, t *Tower) *metrics {
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
	m.degraded = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "hinomi_tower_database_unwritable", Help: "1 while the tower cannot write its database (disk full, I/O errors, read-only): it is degraded.",
	})
	m.shed = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "hinomi_tower_ingest_shed_total", Help: "Agent batches answered 429 (Retry-After) because ingest was overloaded or the agent was past its share of it.",
	})
	m.leader = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "hinomi_tower_leader", Help: "1 while this tower evaluates and sends: it holds the shared store's lease, or its store is its own.",
	})
	m.spooled = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "hinomi_tower_ingest_spooled_batches", Help: "Agent batches kept on this tower's disk because the shared store (PostgreSQL) could not be reached; written to it when it answers.",
	})
	silent := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
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
	})
	outbox := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "hinomi_tower_outbox_due", Help: "Notifications waiting in the outbox.",
	}, func() float64 {
		n, _ := t.store.CountDue(context.Background())
		return float64(n)
	})
	lastEval := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "hinomi_tower_last_evaluation_timestamp_seconds", Help: "When the alert engine last evaluated every signal (Unix time); a tower whose engine stalls shows here.",
	}, func() float64 { return float64(t.lastEval.Load()) / 1e9 })
	shared := []prometheus.Collector{m.ingest, m.records, m.transitions, m.sends, m.sendSeconds, m.degraded, m.shed, m.leader, m.spooled, silent, outbox, lastEval,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})}
	reg.MustRegister(shared...)
	reg.MustRegister(probeCollector{t: t})
	reg.MustRegister(lossCollector{t: t})
	// What /metrics shows to anyone when metrics.public: the same, but
	// no series of a probe that is not public.
	public.MustRegister(shared...)
	public.MustRegister(probeCollector{t: t, publicOnly: true})
	return m
}

// probeCollector exports each probe's latest result, as blackbox_exporter
// users expect: up (1 up or degraded, 0 down), degraded, duration, time.
type probeCollector struct {
	t          *Tower
	publicOnly bool
}

var (
	probeUpDesc       = prometheus.NewDesc("hinomi_probe_up", "1 when the probe's latest run passed (up or degraded), 0 when it failed.", []string{"probe", "group"}, nil)
	probeDegradedDesc = prometheus.NewDesc("hinomi_probe_degraded", "1 when the probe's latest run was degraded.", []string{"probe", "group"}, nil)
	probeSecondsDesc  = prometheus.NewDesc("hinomi_probe_duration_seconds", "How long the probe's latest run took.", []string{"probe", "group"}, nil)
	probeLastDesc     = prometheus.NewDesc("hinomi_probe_last_run_timestamp_seconds", "When the probe's latest run started (Unix time).", []string{"probe", "group"}, nil)
)

func (c probeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- probeUpDesc
	ch <- probeDegradedDesc
	ch <- probeSecondsDesc
	ch <- probeLastDesc
}

func (c probeCollector) Collect(ch chan<- prometheus.Metric) {
	public := map[string]bool{}
	for _, p := range c.t.cfg.Load().Probes {
		public[p.Name] = p.Public
	}
	c.t.mu.Lock()
	defer c.t.mu.Unlock()
	for name, r := range c.t.probes {
		if c.publicOnly && !public[name] {
			continue
		}
		up, degraded := 0.0, 0.0
		if r.Status != "down" {
			up = 1
		}
		if r.Status == "degraded" {
			degraded = 1
		}
		ch <- prometheus.MustNewConstMetric(probeUpDesc, prometheus.GaugeValue, up, name, r.Group)
		ch <- prometheus.MustNewConstMetric(probeDegradedDesc, prometheus.GaugeValue, degraded, name, r.Group)
		ch <- prometheus.MustNewConstMetric(probeSecondsDesc, prometheus.GaugeValue, r.Duration.Seconds(), name, r.Group)
		ch <- prometheus.MustNewConstMetric(probeLastDesc, prometheus.GaugeValue, float64(r.Started.UnixNano())/1e9, name, r.Group)
	}
}

// Package metrics holds the platform's Prometheus collectors, registered on a
// private registry served at /metrics.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are the platform's collectors.
type Metrics struct {
	Registry     *prometheus.Registry
	Connections  prometheus.Gauge
	Connects     *prometheus.CounterVec // result: ok, refused
	MessagesIn   *prometheus.CounterVec // kind: dm, group, receipt, typing, signal, presence
	Deliveries   *prometheus.CounterVec // kind
	Refusals     *prometheus.CounterVec // code
	StoreLatency prometheus.Histogram
	HTTPRequests *prometheus.CounterVec // route, status
	// PacketsRefused counts connections ended by the broker's packet guard.
	PacketsRefused *prometheus.CounterVec // reason
	// ConnPanics counts connections whose goroutine panicked and was
	// recovered (a bug: each one is logged with its stack).
	ConnPanics prometheus.Counter
}

// New creates and registers every collector.
func New() *Metrics {
	r := prometheus.NewRegistry()
	m := &Metrics{
		Registry:    r,
		Connections: prometheus.NewGauge(prometheus.GaugeOpts{Name: "mqim_connections", Help: "MQTT connections currently established."}),
		Connects:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mqim_connects_total", Help: "MQTT CONNECT attempts by result."}, []string{"result"}),
		MessagesIn:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mqim_messages_in_total", Help: "Accepted publishes by kind."}, []string{"kind"}),
		Deliveries:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mqim_deliveries_total", Help: "Server-side publishes into inboxes by kind."}, []string{"kind"}),
		Refusals:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mqim_refusals_total", Help: "Refused publishes by error code."}, []string{"code"}),
		StoreLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "mqim_store_append_seconds", Help: "History append latency (includes group commit wait).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)}),
		HTTPRequests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mqim_http_requests_total", Help: "HTTP API requests by route and status."}, []string{"route", "status"}),
		PacketsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mqim_packets_refused_total",
			Help: "MQTT connections ended because a packet was malformed or too large, by reason."}, []string{"reason"}),
		ConnPanics: prometheus.NewCounter(prometheus.CounterOpts{Name: "mqim_connection_panics_total",
			Help: "MQTT connections dropped after a recovered panic on their goroutine."}),
	}
	r.MustRegister(m.Connections, m.Connects, m.MessagesIn, m.Deliveries, m.Refusals, m.StoreLatency, m.HTTPRequests,
		m.PacketsRefused, m.ConnPanics,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

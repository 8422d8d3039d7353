package server

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are a Server's Prometheus metrics, in a registry of its own so
// that several Servers in one process (tests, say) do not collide.
type metrics struct {
	reg            *prometheus.Registry
	streams        prometheus.Gauge
	blocks, bytes  *prometheus.CounterVec // by codec
	resumes        prometheus.Counter
	responses      *prometheus.CounterVec // by status
	manifestHits   prometheus.Counter
	manifestMisses prometheus.Counter
	originSeconds  *prometheus.HistogramVec // by operation
	originErrors   *prometheus.CounterVec   // by kind
}

func newMetrics(bc *BlockCache) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		streams: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ferry_streams_open", Help: "Streams of /sse/ open now.",
		}),
		blocks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_blocks_sent_total", Help: "Block events sent, by the codec of their data.",
		}, []string{"codec"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_block_bytes_sent_total", Help: "Bytes of block events sent (framing and base64 included), by codec.",
		}, []string{"codec"}),
		resumes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ferry_resumes_total", Help: "Streams asked for with a Last-Event-ID: a client resuming.",
		}),
		responses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_responses_total", Help: "Responses, by HTTP status (499: the client left first).",
		}, []string{"status"}),
		manifestHits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ferry_manifest_cache_hits_total", Help: "Manifests found in the cache.",
		}),
		manifestMisses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ferry_manifest_cache_misses_total", Help: "Manifests that had to be computed (or waited for).",
		}),
		originSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "ferry_origin_request_seconds", Help: "Latency of the origin's answers, by operation.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 9),
		}, []string{"op"}),
		originErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_origin_errors_total", Help: "Failed origin requests, by kind: not_found, denied, unavailable, changed.",
		}, []string{"kind"}),
	}
	if bc != nil {
		stat := func(i int) func() float64 {
			return func() float64 {
				h, mi, hb, sz := bc.Stats()
				return float64([]int64{h, mi, hb, sz}[i])
			}
		}
		m.reg.MustRegister(
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "ferry_block_cache_hits_total", Help: "Blocks of remote files read from the block cache."}, stat(0)),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "ferry_block_cache_misses_total", Help: "Blocks of remote files not in the block cache."}, stat(1)),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "ferry_block_cache_hit_bytes_total", Help: "Bytes read from the block cache."}, stat(2)),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ferry_block_cache_bytes", Help: "Bytes the block cache holds."}, stat(3)),
		)
	}
	m.reg.MustRegister(m.streams, m.blocks, m.bytes, m.resumes, m.responses, m.manifestHits, m.manifestMisses,
		m.originSeconds, m.originErrors, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// MetricsHandler serves the Server's metrics in Prometheus's text format.
// The Server serves it at /metrics unless Config.MetricsElsewhere is set.
func (s *Server) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{})
}

// originError counts a failed origin request by its kind.
func (m *metrics) originError(err error) {
	switch {
	case err == nil, errors.Is(err, context.Canceled):
	case errors.Is(err, errNotFound):
		m.originErrors.WithLabelValues("not_found").Inc()
	case errors.Is(err, ErrOriginDenied):
		m.originErrors.WithLabelValues("denied").Inc()
	case errors.Is(err, ErrOriginChanged):
		m.originErrors.WithLabelValues("changed").Inc()
	default:
		m.originErrors.WithLabelValues("unavailable").Inc()
	}
}

// observed is an Origin whose answers are timed and counted.
type observed struct {
	Origin
	m *metrics
}

func (o observed) Open(ctx context.Context, rel string) (Object, error) {
	start := time.Now()
	obj, err := o.Origin.Open(ctx, rel)
	o.m.originSeconds.WithLabelValues("open").Observe(time.Since(start).Seconds())
	o.m.originError(err)
	if err != nil {
		return nil, err
	}
	return observedObject{obj, o.m}, nil
}

// observedObject counts the failed reads of an Object.
type observedObject struct {
	Object
	m *metrics
}

func (o observedObject) ReadAt(p []byte, off int64) (int, error) {
	n, err := o.Object.ReadAt(p, off)
	if err != nil && !errors.Is(err, io.EOF) {
		o.m.originError(err)
	}
	return n, err
}

func (m *metrics) response(status int) { m.responses.WithLabelValues(strconv.Itoa(status)).Inc() }

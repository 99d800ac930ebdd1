// Package upstream holds Sluice's upstream pools: per pool, its endpoints
// with their connection clients, the load-balancing policies (lb.go), the
// FIFO queue of requests waiting for a free endpoint (queue.go), active
// health checks and passive ejection (health.go), and the scraping of the
// engines' Prometheus metrics (scrape.go, engine_metrics.go), with the
// stale-connection check of pooled connections (staleconn.go).
//
// The request path (package proxy) uses a small surface: Pools.ByName,
// Pool.Acquire/AcquirePinned/Pick/Release, Endpoint.HostClient and
// RecordFailure/RecordSuccess, and read-only accessors (access.go). The
// pools know nothing of the layer above: they report "no endpoint in
// rotation" through Options.OnAvailability, a callback given to New.
//
// New builds the pools from a config.Resolved; Start launches the health
// checks and scrapes; Close stops them. Everything is safe for concurrent
// use, and selection takes no lock and allocates nothing.
package upstream

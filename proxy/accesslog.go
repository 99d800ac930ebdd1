package proxy

import (
	"context"
	"log/slog"
	"time"
)

// logAccess writes one access-log line for a finished request.
func (s *Server) logAccess(rs *requestState, elapsed time.Duration) {
	upstream := ""
	if rs.pool != nil {
		upstream = rs.pool.Name()
	}
	attrs := []slog.Attr{
		slog.String("method", string(rs.logMethod)),
		slog.String("path", string(rs.logPath)),
		slog.Int("status", rs.status),
		slog.Duration("duration", elapsed),
		slog.String("upstream", upstream),
		slog.String("request_id", string(rs.reqID)),
		slog.Bool("ok", rs.ok),
	}
	if rs.upErr != nil {
		attrs = append(attrs, slog.String("error", rs.upErr.Error()))
	}
	s.log.LogAttrs(context.Background(), slog.LevelInfo, "access", attrs...)
}

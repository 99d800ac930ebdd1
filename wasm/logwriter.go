package wasm

import (
	"bytes"
	"context"
	"log/slog"
)

// maxLogLine bounds a line a guest writes to stdout or stderr: longer lines
// are logged in pieces.
const maxLogLine = 4096

// logWriter routes a guest's stdout or stderr (WASI fd_write) to the
// plugin's logger, one record per line, within the plugin's log rate
// limit (a line over it is dropped and counted). It is used only by its
// instance's calls, which never run concurrently.
type logWriter struct {
	log    *slog.Logger
	level  slog.Level
	stream string
	limit  *logLimiter
	buf    []byte
}

func (w *logWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			room := maxLogLine - len(w.buf)
			if len(p) < room {
				w.buf = append(w.buf, p...)
				break
			}
			w.buf = append(w.buf, p[:room]...)
			p = p[room:]
			w.flush()
			continue
		}
		w.buf = append(w.buf, p[:i]...)
		p = p[i+1:]
		w.flush()
	}
	return n, nil
}

func (w *logWriter) flush() {
	if len(w.buf) > 0 && w.log.Enabled(context.Background(), w.level) && w.limit.allow() {
		w.log.LogAttrs(context.Background(), w.level, string(w.buf), slog.String("stream", w.stream))
	}
	w.buf = w.buf[:0]
}

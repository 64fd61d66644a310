package gateway

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/mqim/mqim/imerr"
)

// GET /api/v1/stream: the Server-Sent Events transport (docs/protocol.md,
// "HTTP fallback transports"). A stream authenticates with a Bearer token or
// a stream ticket (tickets.go).

// stream serves GET /api/v1/stream as Server-Sent Events. Chat messages carry
// "id: {cursor}", so EventSource's Last-Event-ID (or ?since= on a new
// EventSource) resumes exactly after the last one received.
func (g *Gateway) stream(w http.ResponseWriter, r *http.Request, _ string) error {
	user := g.bearer(r)
	if user == "" {
		if t := r.URL.Query().Get("ticket"); t != "" {
			user, _ = g.tr.tickets.redeem(t, g.o.Now())
		}
	}
	if user == "" {
		return fail(http.StatusUnauthorized, imerr.Unauthorized, "missing or invalid Bearer token or stream ticket")
	}
	device, err := feedDevice(r)
	if err != nil {
		return err
	}
	since := r.URL.Query().Get("since")
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		since = id // an EventSource reconnecting by itself
	}
	ctx := r.Context()
	f, err := g.openFeed(user, device, "sse")
	if err != nil {
		return err
	}
	defer f.close()
	cur, err := g.startCursor(ctx, user, since)
	if err != nil {
		return err
	}

	rc := http.NewResponseController(w)
	// The server's ReadTimeout would cancel a long stream's context; a
	// stalled reader is caught by the write deadline instead.
	_ = rc.SetReadDeadline(time.Time{})
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	var buf strings.Builder
	send := func() error {
		if buf.Len() == 0 {
			return nil
		}
		_ = rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
		_, err := w.Write([]byte(buf.String()))
		buf.Reset()
		if err == nil {
			err = rc.Flush()
		}
		return err
	}
	// The ready event carries the start cursor, so even a stream that saw no
	// message yet resumes from where it began.
	fmt.Fprintf(&buf, "retry: 2000\nid: %s\nevent: ready\ndata: {\"cursor\":%q,\"device\":%q}\n\n", cur, cur, device)
	ping := time.NewTicker(g.heartbeat())
	defer ping.Stop()
	for {
		for {
			msgs, next, more, err := f.chat(ctx, cur, 100)
			if err != nil {
				return nil // the status line is out; the client reconnects
			}
			for _, e := range msgs {
				writeEvent(&buf, e)
			}
			cur = next
			if err := send(); err != nil {
				return nil
			}
			if !more {
				break
			}
		}
		for _, e := range f.take() {
			writeEvent(&buf, e)
		}
		if err := send(); err != nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-g.tr.done:
			return nil
		case <-f.wake:
		case <-ping.C:
			buf.WriteString(": ping\n\n")
		}
	}
}

// streamWriteTimeout drops a stream whose reader stopped reading.
const streamWriteTimeout = 10 * time.Second

func writeEvent(b *strings.Builder, e event) {
	id := e.ID
	e.ID = ""
	data, _ := json.Marshal(e)
	if id != "" {
		b.WriteString("id: " + id + "\n")
	}
	b.WriteString("data: ")
	b.Write(data)
	b.WriteString("\n\n")
}

func (g *Gateway) heartbeat() time.Duration {
	if g.o.Transport.Heartbeat > 0 {
		return g.o.Transport.Heartbeat
	}
	return 15 * time.Second
}

package platform_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/mqim/mqim/internal/imtest"
)

// apiError is the body of an HTTP error answer.
type apiError struct {
	Error struct{ Code, Message string }
}

// openOrRefused opens GET /api/v1/stream with a Bearer token. A stream that
// opens is closed at cleanup; a refusal's status and error code are returned.
func openOrRefused(t *testing.T, s *imtest.Server, token string) (*sseStream, int, string) {
	t.Helper()
	st, code := openStream(t, s, "", map[string]string{"Authorization": "Bearer " + token})
	if code == http.StatusOK {
		return st, code, ""
	}
	// Refused: ask again for the body (a refusal is not a stream, so this returns).
	var e apiError
	c, err := s.API("GET", "/api/v1/stream", token, nil, &e)
	if err != nil || c != code {
		t.Fatalf("stream refused with %d, then %d (%v)", code, c, err)
	}
	return nil, code, e.Error.Code
}

// TestStreamQuota: one user's SSE streams and poll sessions together are
// capped (limits.streams_per_user); over it, the user's oldest idle poll
// session gives way, and with none left the answer is 429 quota_exceeded.
// Closing a stream frees its slot; other users are not affected.
func TestStreamQuota(t *testing.T) {
	s := imtest.Start(t, "", func(c *imtestConfig) { c.Limits.StreamsPerUser = 3 })
	bob := s.User("bob")
	alice := s.User("alice")

	var p1, p2 struct{ Session string }
	s.MustAPI(200, "GET", "/api/v1/poll", bob, nil, &p1)
	s.MustAPI(200, "GET", "/api/v1/poll", bob, nil, &p2)
	st1, code, _ := openOrRefused(t, s, bob)
	if code != 200 {
		t.Fatalf("third feed: %d", code)
	}
	// Full: each new stream evicts the least recently polled session.
	if _, code, _ := openOrRefused(t, s, bob); code != 200 {
		t.Fatalf("stream over the cap with an idle poll session: %d, want 200 (the session gives way)", code)
	}
	if code, _ := s.API("GET", "/api/v1/poll?timeout=0&session="+p1.Session, bob, nil, nil); code != 404 {
		t.Fatalf("evicted (oldest) poll session: %d, want 404", code)
	}
	if _, code, _ := openOrRefused(t, s, bob); code != 200 {
		t.Fatalf("second eviction: %d", code)
	}
	// Only streams left: refused, whichever transport asks.
	_, code, ecode := openOrRefused(t, s, bob)
	if code != http.StatusTooManyRequests || ecode != "quota_exceeded" {
		t.Fatalf("stream over the cap: %d %q, want 429 quota_exceeded", code, ecode)
	}
	var e apiError
	if code, _ := s.API("GET", "/api/v1/poll", bob, nil, &e); code != http.StatusTooManyRequests || e.Error.Code != "quota_exceeded" {
		t.Fatalf("poll over the cap: %d %+v", code, e)
	}
	if _, code, _ := openOrRefused(t, s, alice); code != 200 {
		t.Fatalf("another user's stream: %d", code)
	}
	// A closed stream frees its slot (the server sees the close a little later).
	st1.close()
	imtest.Eventually(t, "a slot freed by a closed stream", 5*time.Second, func() bool {
		code, _ := s.API("GET", "/api/v1/poll", bob, nil, nil)
		return code == 200
	})
}

// TestStreamTicketQuota: a user holds at most limits.stream_tickets_per_user
// unused tickets (429 quota_exceeded beyond); a spent or expired ticket
// frees its place.
func TestStreamTicketQuota(t *testing.T) {
	s := imtest.Start(t, "", func(c *imtestConfig) { c.Limits.TicketsPerUser = 2 })
	bob := s.User("bob")
	carol := s.User("carol")
	var tk struct{ Ticket string }
	s.MustAPI(200, "POST", "/api/v1/stream/ticket", bob, nil, &tk)
	s.MustAPI(200, "POST", "/api/v1/stream/ticket", bob, nil, nil)
	var e apiError
	if code, _ := s.API("POST", "/api/v1/stream/ticket", bob, nil, &e); code != http.StatusTooManyRequests || e.Error.Code != "quota_exceeded" {
		t.Fatalf("third ticket: %d %+v, want 429 quota_exceeded", code, e)
	}
	s.MustAPI(200, "POST", "/api/v1/stream/ticket", carol, nil, nil)
	if _, code := openStream(t, s, "?ticket="+tk.Ticket, nil); code != 200 {
		t.Fatalf("stream by ticket: %d", code)
	}
	s.MustAPI(200, "POST", "/api/v1/stream/ticket", bob, nil, nil) // the spent one freed its place
}

// TestPollIdle: a poll session nobody polls for limits.poll_idle is closed
// and frees its stream slot.
func TestPollIdle(t *testing.T) {
	s := imtest.Start(t, "", func(c *imtestConfig) {
		c.Limits.StreamsPerUser = 1
		c.Limits.PollIdle = 300 * time.Millisecond
	})
	bob := s.User("bob")
	var p struct{ Session string }
	s.MustAPI(200, "GET", "/api/v1/poll", bob, nil, &p)
	// (Polling the session would keep it alive: watch the gateway instead.)
	imtest.Eventually(t, "the idle session closed", 5*time.Second, func() bool { return s.Gateway.Feeds() == 0 })
	if code, _ := s.API("GET", "/api/v1/poll?timeout=0&session="+p.Session, bob, nil, nil); code != 404 {
		t.Fatalf("idle session: %d, want 404", code)
	}
	if _, code, _ := openOrRefused(t, s, bob); code != 200 {
		t.Fatalf("stream after the idle session closed: %d", code)
	}
}

package wsconn

import (
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestWaitRead: WaitRead returns at once while a message has unread bytes,
// and once they are read it waits for the next message (here: until the
// deadline), so a caller waiting in it holds no buffer of its own.
func TestWaitRead(t *testing.T) {
	srv := make(chan *Conn, 1)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		srv <- New(c)
	}))
	defer hs.Close()
	c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(hs.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := <-srv
	defer s.Close()
	if err := c.WriteMessage(websocket.BinaryMessage, []byte("ab")); err != nil {
		t.Fatal(err)
	}
	if err := s.WaitRead(); err != nil {
		t.Fatalf("WaitRead with a message arriving: %v", err)
	}
	p := make([]byte, 1)
	for _, want := range "ab" {
		if err := s.WaitRead(); err != nil {
			t.Fatalf("WaitRead with bytes unread: %v", err)
		}
		if n, err := s.Read(p); n != 1 || err != nil || rune(p[0]) != want {
			t.Fatalf("Read = %d %q %v, want %q", n, p[:n], err, want)
		}
	}
	_ = s.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	var ne net.Error
	if err := s.WaitRead(); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("WaitRead after the message was read: %v, want to wait (deadline exceeded)", err)
	}
}

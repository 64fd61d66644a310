package broker

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/mqim/mqim/internal/wsconn"
)

// connPair returns the two ends of one connection over a transport.
type connPair func(t *testing.T) (server, client net.Conn)

func tcpPair(t *testing.T) (net.Conn, net.Conn) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return &boundedConn{Conn: s}, c
}

func wsPair(t *testing.T) (net.Conn, net.Conn) {
	srv := make(chan net.Conn, 1)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		srv <- wsconn.New(c)
	}))
	t.Cleanup(hs.Close)
	c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(hs.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	s := <-srv
	t.Cleanup(func() { c.Close(); s.Close() })
	return &boundedConn{Conn: s}, wsconn.New(c)
}

func pipePair(t *testing.T) (net.Conn, net.Conn) {
	s, c := net.Pipe()
	t.Cleanup(func() { c.Close(); s.Close() })
	return s, c
}

// TestGuardReader reads a stream written in pieces (one byte, a run across
// the buffer's end, a piece larger than the buffer) over each transport and
// checks the bytes, that no buffer is held once everything buffered is read,
// and the end of the stream.
func TestGuardReader(t *testing.T) {
	for _, tc := range []struct {
		name string
		pair connPair
		path string // which read path the transport takes
	}{
		{"tcp", tcpPair, "socket"},
		{"websocket", wsPair, "waiter"},
		{"pipe", pipePair, "plain"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, c := tc.pair(t)
			r := newGuardReader(s)
			path := "plain"
			if r.sock != nil {
				path = "socket"
			} else if r.waiter != nil {
				path = "waiter"
			}
			if path != tc.path {
				t.Fatalf("read path %s, want %s", path, tc.path)
			}
			big := bytes.Repeat([]byte("0123456789"), guardReadBuffer/5) // twice the buffer
			pieces := [][]byte{{0x30}, bytes.Repeat([]byte{'a'}, guardReadBuffer+10), big}
			read1 := make(chan struct{})
			go func() {
				for i, p := range pieces {
					if _, err := c.Write(p); err != nil {
						return
					}
					if i == 0 {
						<-read1 // the first byte arrives alone
					}
				}
				c.Close()
			}()
			b, err := r.ReadByte()
			if err != nil || b != 0x30 {
				t.Fatalf("ReadByte = %#x, %v", b, err)
			}
			if r.buf != nil {
				t.Fatal("buffer held with nothing buffered")
			}
			close(read1)
			for _, want := range pieces[1:] {
				got := make([]byte, len(want))
				if err := r.ReadFull(got); err != nil {
					t.Fatalf("ReadFull: %v", err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("ReadFull read other bytes than written")
				}
			}
			if r.buf != nil {
				t.Fatal("buffer held with nothing buffered")
			}
			if _, err := r.ReadByte(); err == nil {
				t.Fatal("ReadByte after the peer closed: no error")
			} else if tc.path != "waiter" && !errors.Is(err, io.EOF) {
				t.Fatalf("ReadByte after the peer closed: %v, want EOF", err)
			}
		})
	}
}

// TestGuardReaderDeadline: a read deadline set on the connection ends a
// socket read waiting for bytes, as it would a plain Read.
func TestGuardReaderDeadline(t *testing.T) {
	s, _ := tcpPair(t)
	r := newGuardReader(s)
	if err := s.SetReadDeadline(time.Now().Add(10 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReadByte(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("ReadByte past the deadline: %v, want a deadline error", err)
	}
	if r.buf != nil {
		t.Fatal("buffer held after a failed read")
	}
}

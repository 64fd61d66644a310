package ratelimit

import (
	"net"
	"testing"
	"time"
)

func TestBuckets(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	b := NewBuckets(2, 3, func() time.Time { return now })
	steps := []struct {
		advance time.Duration
		key     string
		want    bool
	}{
		{0, "a", true}, {0, "a", true}, {0, "a", true}, // burst of 3
		{0, "a", false},                     // empty
		{0, "b", true},                      // other keys are independent
		{500 * time.Millisecond, "a", true}, // 2/s: one token back
		{0, "a", false},
		{10 * time.Second, "a", true}, // refills to burst, not beyond
		{0, "a", true}, {0, "a", true}, {0, "a", false},
	}
	for i, s := range steps {
		now = now.Add(s.advance)
		if got := b.Allow(s.key); got != s.want {
			t.Fatalf("step %d (%s): Allow = %v, want %v", i, s.key, got, s.want)
		}
	}
	if NewBuckets(0, 1, nil).Enabled() {
		t.Fatal("rate 0 must disable the limit")
	}
	// Full buckets are forgotten.
	now = now.Add(time.Hour)
	b.Allow("c")
	if n := b.Len(); n != 1 {
		t.Fatalf("buckets held after an hour: %d, want 1", n)
	}
}

func TestListenerMaxConns(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := make(chan string, 10)
	l := NewListener(inner, ListenerLimits{MaxConns: 2, OnRefuse: func(_, reason string) { refused <- reason }})
	defer l.Close()
	accepted := make(chan net.Conn, 10)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	dial := func() net.Conn {
		c, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	dial()
	dial()
	a1, a2 := <-accepted, <-accepted
	third := dial()
	if r := <-refused; r != "max_conns" {
		t.Fatalf("refusal reason %q", r)
	}
	_ = third.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := third.Read(make([]byte, 1)); err == nil {
		t.Fatal("third connection was not closed")
	}
	a1.Close()
	a1.Close() // a second Close must not free a second slot
	dial()
	<-accepted
	if n := l.Open("127.0.0.1"); n != 2 {
		t.Fatalf("open = %d, want 2", n)
	}
	a2.Close()
}

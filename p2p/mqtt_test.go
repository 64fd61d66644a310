package p2p

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mqim/mqim/imclient"
	"github.com/mqim/mqim/internal/imtest"
	"github.com/mqim/mqim/roap"
)

// mqttEndpoint is an endpoint signalling through the real server.
type mqttEndpoint struct {
	*endpoint
	client  *imclient.Client
	refused atomic.Int32 // inbound signals HandleEvent refused
}

// mqttPeer signs user in on srv and starts a Peer on the MQTT signaller.
func mqttPeer(t testing.TB, srv *imtest.Server, user string, offerTimeout time.Duration) *mqttEndpoint {
	t.Helper()
	me := &mqttEndpoint{endpoint: newEndpoint()}
	e := me.endpoint
	sig := NewMQTTSignaller(user)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := imclient.Dial(ctx, imclient.Options{HTTP: srv.HTTP, User: user, Password: imtest.Password, Device: "p2p",
		OnEvent: func(topic string, b []byte) {
			if err := sig.HandleEvent(topic, b); err != nil && !errors.Is(err, ErrNotSignal) {
				me.refused.Add(1)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	sig.SetClient(c.MQTT())
	settings := LoopbackSettings()
	e.Peer = NewPeer(Config{
		Self: user, Signaller: sig, Settings: &settings, OfferTimeout: offerTimeout, Logf: t.Logf,
		Transfer: e.transferConfig,
	})
	sig.Bind(e.Peer)
	me.client = c
	t.Cleanup(func() {
		e.Peer.Close()
		c.Close()
	})
	return me
}

func TestMQTTOfferToOfflineUserFailsAtOnce(t *testing.T) {
	srv := imtest.Start(t, "")
	srv.User("alice")
	srv.User("carol") // exists, no device online
	alice := mqttPeer(t, srv, "alice", 10*time.Second)
	start := time.Now()
	_, err := alice.Dial(context.Background(), "carol")
	var se *SignalError
	if !errors.As(err, &se) || se.Type != roap.ErrorOffline || !se.Remote {
		t.Fatalf("Dial to an offline user: %v, want ERROR OFFLINE from the server", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("OFFLINE took %v", d)
	}
}

func TestMQTTUnansweredOfferTimesOut(t *testing.T) {
	srv := imtest.Start(t, "")
	srv.User("alice")
	srv.User("bob")
	bob := srv.MustConnect("bob", imtest.ClientOpts{}) // online, but no WebRTC peer answers
	alice := mqttPeer(t, srv, "alice", 500*time.Millisecond)
	start := time.Now()
	_, err := alice.Dial(context.Background(), "bob")
	var se *SignalError
	if !errors.As(err, &se) || se.Type != roap.ErrorTimeout || se.Remote {
		t.Fatalf("unanswered Dial: %v, want local ERROR TIMEOUT", err)
	}
	if d := time.Since(start); d < 400*time.Millisecond || d > 5*time.Second {
		t.Fatalf("timeout after %v, want ~500ms", d)
	}
	// bob saw the OFFER and then the ERROR TIMEOUT, both stamped by the server.
	var types []string
	imtest.Eventually(t, "bob to get OFFER ... ERROR TIMEOUT", 5*time.Second, func() bool {
		types = types[:0]
		for _, m := range bob.Messages("im/u/bob/signal/alice") {
			msg, err := roap.Decode(m.Payload)
			if err != nil {
				t.Fatalf("bob got an undecodable signal %s: %v", m.Payload, err)
			}
			if msg.From != "alice" || msg.To != "bob" {
				t.Fatalf("signal not stamped: %+v", msg)
			}
			if msg.Type == roap.TypeError && msg.ErrorType != roap.ErrorTimeout {
				t.Fatalf("bob got %+v, want ERROR TIMEOUT", msg)
			}
			if msg.Type != roap.TypeCandidate {
				types = append(types, string(msg.Type))
			}
		}
		return len(types) == 2 && types[0] == "OFFER" && types[1] == "ERROR"
	})
}

func TestMQTTMalformedSignalsRefused(t *testing.T) {
	srv := imtest.Start(t, "")
	srv.User("alice")
	srv.User("bob")
	bob := mqttPeer(t, srv, "bob", 10*time.Second)
	raw := srv.MustConnect("alice", imtest.ClientOpts{Device: "raw"})
	bad := []string{
		`{"type":"OFFER","from":"alice","to":"bob","sessionID":"s1"}`,                              // no sdp
		`{"type":"OFFER","from":"alice","to":"bob","sessionID":"s1","sdp":"v=0","extra":1}`,        // unknown field
		`{"type":"BOGUS","from":"alice","to":"bob","sessionID":"s1"}`,                              // unknown type
		`{"type":"OK","from":"alice","to":"bob","sessionID":"no such session"}`,                    // bad id
		`{"type":"CANDIDATE","from":"alice","to":"bob","sessionID":"s2","candidate":{"sdpMid":1}}`, // bad candidate
		`{"type":"ANSWER","from":"alice","to":"bob","sessionID":"s3","sdp":"v=0"}`,                 // no such session
		`{"type":"OFFER","from":"alice","to":"bob","sessionID":"s4","sdp":"not sdp"}`,              // not SDP
		`{"type":"ERROR","from":"alice","to":"bob","sessionID":"s5","errorType":"lower"}`,          // bad errorType
	}
	for _, p := range bad {
		raw.Publish("im/u/bob/signal/alice", 1, p)
	}
	// Not JSON at all: the server refuses it and tells alice why.
	raw.Publish("im/u/bob/signal/alice", 1, "hello")
	raw.WaitFor("im/u/alice/error", 1)
	imtest.Eventually(t, "bob to refuse the malformed signals", 5*time.Second, func() bool { return bob.refused.Load() == int32(len(bad)) })
	// Nothing crashed, and bob still takes part in a real session.
	alice := mqttPeer(t, srv, "alice", 10*time.Second)
	s := dial(t, alice.endpoint, "bob")
	info, err := s.Engine().SendFile("after-garbage", "", bytes.NewReader([]byte("still alive")), 11)
	if err != nil {
		t.Fatal(err)
	}
	waitDone(t, 10*time.Second, alice.endpoint, bob.endpoint, info.ID, nil)
}

func TestMQTTTransferGoToGo(t *testing.T) {
	srv := imtest.Start(t, "")
	srv.User("alice")
	srv.User("bob")
	bob := mqttPeer(t, srv, "bob", 10*time.Second)
	alice := mqttPeer(t, srv, "alice", 10*time.Second)
	start := time.Now()
	s := dial(t, alice.endpoint, "bob")
	t.Logf("offer to open through the server: %v", time.Since(start))
	sizes := []int{4 << 20, 100<<10 + 7}
	var ids []string
	var sums [][32]byte
	for i, n := range sizes {
		data := randomBytes(n, uint64(i+1))
		info, err := s.Engine().SendFile("f", "application/octet-stream", bytes.NewReader(data), int64(n))
		if err != nil {
			t.Fatal(err)
		}
		ids, sums = append(ids, info.ID), append(sums, sha256.Sum256(data))
	}
	for i, id := range ids {
		waitDone(t, 60*time.Second, alice.endpoint, bob.endpoint, id, nil)
		if got := sha256.Sum256(bob.sink(id).Bytes()); got != sums[i] {
			t.Fatalf("file %d: SHA-256 differs", i)
		}
	}
	s.Close()
	// The session's signals never reached the history.
	var page struct {
		Messages []json.RawMessage `json:"messages"`
	}
	srv.MustAPI(200, "GET", "/api/v1/history/dm/bob", srv.Login("alice"), nil, &page)
	if len(page.Messages) != 0 {
		t.Fatalf("signals were stored: %s", page.Messages)
	}
}

// nopSignaller drops what it is asked to send.
type nopSignaller struct{}

func (nopSignaller) SendSignal(roap.Message) error { return nil }

// FuzzMQTTSignal feeds arbitrary topics and payloads to the MQTT
// signaller: whatever arrives, nothing panics, and only well-formed ROAP on
// our own signal topic reaches the Peer.
func FuzzMQTTSignal(f *testing.F) {
	f.Add("im/u/bob/signal/alice", []byte(`{"type":"OFFER","from":"alice","to":"bob","sessionID":"s1","sdp":"v=0\r\n"}`))
	f.Add("im/u/bob/signal/alice", []byte(`{"type":"CANDIDATE","from":"alice","to":"bob","sessionID":"s1","candidate":{"candidate":""}}`))
	f.Add("im/u/bob/signal/alice", []byte(`{"type":"ERROR","from":"alice","to":"bob","sessionID":"s1","errorType":"OFFLINE"}`))
	f.Add("im/u/carol/signal/alice", []byte(`{}`))
	f.Add("im/u/bob/dm/alice", []byte(`hello`))
	settings := LoopbackSettings()
	p := NewPeer(Config{Self: "bob", Signaller: nopSignaller{}, Settings: &settings, Accept: func(string) bool { return false }})
	f.Cleanup(p.Close)
	sig := NewMQTTSignaller("bob")
	sig.Bind(p)
	f.Fuzz(func(t *testing.T, topic string, payload []byte) {
		_ = sig.HandleEvent(topic, payload)
	})
}

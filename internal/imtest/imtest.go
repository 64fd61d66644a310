// Package imtest runs real platform servers in-process on ephemeral ports for
// tests, and gives them paho clients that record what they receive.
package imtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/mqim/mqim/config"
	"github.com/mqim/mqim/envelope"
	"github.com/mqim/mqim/internal/checkfor"
	"github.com/mqim/mqim/platform"
)

// Server is a running platform.
type Server struct {
	*platform.Platform
	Dir  string
	HTTP string // base URL, http://127.0.0.1:PORT
	MQTT string // tcp://127.0.0.1:PORT
	WS   string // ws://127.0.0.1:PORT/mqtt
	t    testing.TB
}

// Logger returns a logger for test servers: quiet unless MQIM_TEST_LOG is set.
func Logger() *slog.Logger {
	if os.Getenv("MQIM_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// Start runs a server on a fresh data dir (or dir, when given) with
// ephemeral ports. It is closed at test cleanup unless closed before.
func Start(t testing.TB, dir string, mods ...func(*config.Config)) *Server {
	t.Helper()
	return StartLogged(t, dir, Logger(), mods...)
}

// StartLogged is Start with the server's logger.
func StartLogged(t testing.TB, dir string, log *slog.Logger, mods ...func(*config.Config)) *Server {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	cfg := config.Default()
	cfg.Data, cfg.HTTP, cfg.MQTT = dir, "127.0.0.1:0", "127.0.0.1:0"
	cfg.Durability = "none" // tests that need fsync set it
	// Tests flood from one user and one IP on purpose; those that test
	// the limits set them.
	cfg.Limits = config.Limits{}
	for _, m := range mods {
		m(&cfg)
	}
	p, err := platform.Start(cfg, log)
	if err != nil {
		t.Fatalf("start platform: %v", err)
	}
	s := &Server{Platform: p, Dir: dir, t: t,
		HTTP: "http://" + p.HTTPAddr.String(), MQTT: "tcp://" + p.MQTTAddr.String(), WS: "ws://" + p.HTTPAddr.String() + "/mqtt"}
	t.Cleanup(func() { s.Close() })
	return s
}

// Close stops the server (idempotent).
func (s *Server) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s.Platform.Close(ctx)
}

// API performs an HTTP request and decodes the JSON answer into out (if non-nil).
func (s *Server) API(method, path, token string, body any, out any) (int, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd = strings.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, s.HTTP+path, rd)
	if err != nil {
		return 0, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			return resp.StatusCode, fmt.Errorf("decode %s: %w", raw, err)
		}
	}
	return resp.StatusCode, nil
}

// MustAPI is API that fails the test on a transport error or unexpected status.
func (s *Server) MustAPI(want int, method, path, token string, body any, out any) {
	s.t.Helper()
	code, err := s.API(method, path, token, body, out)
	if err != nil || code != want {
		s.t.Fatalf("%s %s: status %d (want %d), err %v", method, path, code, want, err)
	}
}

// Password is the password every test user gets.
const Password = "correct horse battery"

// User registers user and returns a token.
func (s *Server) User(user string) string {
	s.t.Helper()
	s.MustAPI(201, "POST", "/api/v1/register", "", map[string]string{"user": user, "password": Password}, nil)
	return s.Login(user)
}

// Login returns a fresh token for user.
func (s *Server) Login(user string) string {
	s.t.Helper()
	var out struct{ Token string }
	s.MustAPI(200, "POST", "/api/v1/login", "", map[string]string{"user": user, "password": Password}, &out)
	return out.Token
}

// Msg is one received MQTT message.
type Msg struct {
	Topic   string
	Payload []byte
}

// Client is a paho client recording everything it receives.
type Client struct {
	paho.Client
	User string
	mu   sync.Mutex
	msgs []Msg
	t    testing.TB
}

// ClientOpts tune Connect.
type ClientOpts struct {
	URL      string // broker URL; default the TCP listener
	Device   string // default "dev"
	Password string // default Password
	Clean    bool
	NoSub    bool // do not subscribe to the inbox
}

// Connect connects user (persistent session unless Clean) and subscribes to
// its inbox and all presence.
func (s *Server) Connect(user string, o ClientOpts) (*Client, error) {
	if o.URL == "" {
		o.URL = s.MQTT
	}
	if o.Device == "" {
		o.Device = "dev"
	}
	if o.Password == "" {
		o.Password = Password
	}
	c := &Client{User: user, t: s.t}
	opts := paho.NewClientOptions().AddBroker(o.URL).SetClientID(user + ":" + o.Device).
		SetUsername(user).SetPassword(o.Password).SetCleanSession(o.Clean).
		SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(5 * time.Second).
		SetOrderMatters(false).SetKeepAlive(30 * time.Second).
		SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { c.record(m) })
	c.Client = paho.NewClient(opts)
	if tok := c.Client.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		return nil, fmt.Errorf("connect %s: %v", user, tok.Error())
	}
	if !o.NoSub {
		tok := c.SubscribeMultiple(map[string]byte{"im/u/" + user + "/#": 1, "im/presence/+": 0}, nil)
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			return nil, fmt.Errorf("subscribe %s: %v", user, tok.Error())
		}
	}
	return c, nil
}

// MustConnect is Connect that fails the test on error.
func (s *Server) MustConnect(user string, o ClientOpts) *Client {
	s.t.Helper()
	c, err := s.Connect(user, o)
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { c.Disconnect(0) })
	return c
}

// MustDialRaw5 is DialRaw5 to this server that fails the test unless the
// CONNACK accepts; the connection is closed when the test ends.
func (s *Server) MustDialRaw5(clientID, user, password string) *Raw5 {
	s.t.Helper()
	r, code, err := DialRaw5(s.MQTT, clientID, user, password)
	if err != nil || code != 0 {
		s.t.Fatalf("MQTT 5 connect as %s: CONNACK %#x %v", clientID, code, err)
	}
	s.t.Cleanup(func() { r.Close() })
	return r
}

func (c *Client) record(m paho.Message) {
	c.mu.Lock()
	c.msgs = append(c.msgs, Msg{m.Topic(), append([]byte(nil), m.Payload()...)})
	c.mu.Unlock()
}

// Messages returns a copy of what was received on topics with prefix.
func (c *Client) Messages(prefix string) []Msg {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []Msg
	for _, m := range c.msgs {
		if strings.HasPrefix(m.Topic, prefix) {
			out = append(out, m)
		}
	}
	return out
}

// Envelopes decodes the chat messages received on topics with prefix.
func (c *Client) Envelopes(prefix string) []envelope.Message {
	var out []envelope.Message
	for _, m := range c.Messages(prefix) {
		var e envelope.Message
		if json.Unmarshal(m.Payload, &e) == nil && e.ID != "" {
			out = append(out, e)
		}
	}
	return out
}

// Publish publishes and waits for the broker's acknowledgement.
func (c *Client) Publish(topic string, qos byte, payload any) {
	c.t.Helper()
	tok := c.Client.Publish(topic, qos, false, payload)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		c.t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

// Eventually polls cond until it holds or the deadline passes (see
// checkfor.Err for a check that says what it saw).
func Eventually(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	checkfor.True(t, d, what, cond)
}

// WaitFor waits until at least n messages arrived on topics with prefix.
func (c *Client) WaitFor(prefix string, n int) []Msg {
	c.t.Helper()
	Eventually(c.t, fmt.Sprintf("%d messages on %s for %s", n, prefix, c.User), 10*time.Second, func() bool {
		return len(c.Messages(prefix)) >= n
	})
	return c.Messages(prefix)
}

package main

import (
	"context"
	"encoding/json"
	"io"
	"log"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mqim/mqim/acl"
	"github.com/mqim/mqim/config"
	"github.com/mqim/mqim/envelope"
	"github.com/mqim/mqim/internal/imtest"
)

// The device example runs against a real server: its alert reaches a chat
// member (a plain MQTT client, no browser), and a command sent to it in chat
// gets an answer; its telemetry reaches a person allowed to read it.
func TestDeviceExample(t *testing.T) {
	s := imtest.Start(t, "", func(c *config.Config) {
		c.Rules = []acl.Rule{
			{Role: "device", Access: "readwrite", Topics: []string{"devices/%u/#"}},
			{Role: "person", Access: "read", Topics: []string{"devices/+/telemetry"}},
		}
	})
	tok := s.User("alice")
	s.MustAPI(201, "POST", "/api/v1/devices", tok, map[string]string{"id": "boiler"}, nil)
	var k struct{ Key string }
	s.MustAPI(201, "POST", "/api/v1/devices/boiler/keys", tok, map[string]string{"client_id": "boiler:main"}, &k)
	s.MustAPI(201, "POST", "/api/v1/groups", tok, map[string]any{"id": "home", "members": []string{"boiler"}}, nil)

	alice := s.MustConnect("alice", imtest.ClientOpts{})
	alice.Subscribe("devices/+/telemetry", 0, nil).Wait()

	var temp atomic.Value
	temp.Store(70.0)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{Broker: s.MQTT, User: "boiler", Key: k.Key, Group: "home", Threshold: 80,
			Every: 50 * time.Millisecond, Read: func() float64 { return temp.Load().(float64) }}, log.New(io.Discard, "", 0))
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()

	alice.WaitFor("devices/boiler/telemetry", 1)
	temp.Store(91.5)
	alert := alice.WaitFor("im/u/alice/g/home", 1)
	var m envelope.Message
	json.Unmarshal(alert[0].Payload, &m)
	if m.From != "boiler" || !strings.Contains(m.Body, "ALERT: temperature 91.5") {
		t.Fatalf("alert %+v", m)
	}

	alice.Publish("im/u/boiler/dm/alice", 1, "status")
	imtest.Eventually(t, "the device answers", 10*time.Second, func() bool {
		for _, e := range alice.Envelopes("im/u/alice/dm/boiler") {
			if e.From == "boiler" && strings.Contains(e.Body, "temperature 91.5 C") {
				return true
			}
		}
		return false
	})
	alice.Publish("im/u/boiler/dm/alice", 1, "threshold 95")
	imtest.Eventually(t, "threshold command", 10*time.Second, func() bool {
		for _, e := range alice.Envelopes("im/u/alice/dm/boiler") {
			if strings.Contains(e.Body, "alert threshold set to 95.0 C") {
				return true
			}
		}
		return false
	})
}

package platform_test

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/mqim/mqim/acl"
	"github.com/mqim/mqim/internal/imtest"
)

// Broker conformance for namespaces that operator rules open: the platform
// must behave like any MQTT 5 broker there. Each test uses paho.golang, a
// full MQTT 5 client.

type v5client struct {
	*paho.Client
	conn net.Conn
	mu   sync.Mutex
	got  []*paho.Publish
}

func (c *v5client) received(topic string) []*paho.Publish {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*paho.Publish
	for _, p := range c.got {
		if topic == "" || p.Topic == topic {
			out = append(out, p)
		}
	}
	return out
}

func u32(v uint32) *uint32 { return &v }
func u16(v uint16) *uint16 { return &v }

type v5opts struct {
	clean  bool
	expiry uint32
	will   *paho.WillMessage
	delay  uint32
}

func dialV5(t *testing.T, s *imtest.Server, user, clientID, password string, o v5opts) *v5client {
	t.Helper()
	c, _ := dialV5Ack(t, s, user, clientID, password, o)
	return c
}

// dialV5Ack is dialV5 that also returns the CONNACK.
func dialV5Ack(t *testing.T, s *imtest.Server, user, clientID, password string, o v5opts) (*v5client, *paho.Connack) {
	t.Helper()
	conn, err := net.Dial("tcp", s.MQTTAddr.String())
	if err != nil {
		t.Fatal(err)
	}
	c := &v5client{conn: conn}
	c.Client = paho.NewClient(paho.ClientConfig{Conn: conn, OnPublishReceived: []func(paho.PublishReceived) (bool, error){
		func(pr paho.PublishReceived) (bool, error) {
			c.mu.Lock()
			c.got = append(c.got, pr.Packet)
			c.mu.Unlock()
			return true, nil
		}}})
	cp := &paho.Connect{ClientID: clientID, Username: user, UsernameFlag: true, Password: []byte(password), PasswordFlag: true,
		KeepAlive: 30, CleanStart: o.clean, Properties: &paho.ConnectProperties{SessionExpiryInterval: u32(o.expiry)}, WillMessage: o.will}
	if o.will != nil && o.delay > 0 {
		cp.WillProperties = &paho.WillProperties{WillDelayInterval: u32(o.delay)}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ca, err := c.Connect(ctx, cp)
	if err != nil || ca.ReasonCode != 0 {
		t.Fatalf("connect %s: %v %+v", clientID, err, ca)
	}
	t.Cleanup(func() { c.Disconnect(&paho.Disconnect{}); conn.Close() })
	return c, ca
}

func sub(t *testing.T, c *v5client, topic string, qos byte, id int) {
	t.Helper()
	s := &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: topic, QoS: qos}}}
	if id > 0 {
		s.Properties = &paho.SubscribeProperties{SubscriptionIdentifier: &id}
	}
	sa, err := c.Subscribe(context.Background(), s)
	if err != nil || sa.Reasons[0] >= 0x80 {
		t.Fatalf("subscribe %s: %v %+v", topic, err, sa)
	}
}

func pub(t *testing.T, c *v5client, p *paho.Publish) *paho.PublishResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := c.Publish(ctx, p)
	if err != nil {
		t.Fatalf("publish %s: %v", p.Topic, err)
	}
	return r
}

// conformanceServer opens bots/# to everyone and gives "dev" a key.
func conformanceServer(t *testing.T) (*imtest.Server, string) {
	s := imtest.Start(t, "", func(c *imtestConfig) {
		c.Rules = []acl.Rule{{User: "*", Access: "readwrite", Topics: []string{"bots/#", "devices/%u/#"}}}
	})
	tok := s.User("alice")
	key, _ := newDevice(t, s, tok, "dev", "")
	return s, key
}

func TestConformanceQoS2ExactlyOnceAndRetained(t *testing.T) {
	s, key := conformanceServer(t)
	subc := dialV5(t, s, "alice", "alice:sub", imtest.Password, v5opts{clean: true})
	sub(t, subc, "bots/q/#", 2, 0)
	dev := dialV5(t, s, "dev", "dev:a", key, v5opts{clean: true})
	const n = 50
	for i := 0; i < n; i++ {
		for _, q := range []byte{0, 1, 2} {
			r := pub(t, dev, &paho.Publish{Topic: "bots/q/" + string('0'+rune(q)), QoS: q, Payload: []byte{byte(i)}})
			if q > 0 && r.ReasonCode >= 0x80 {
				t.Fatalf("qos %d reason %#x", q, r.ReasonCode)
			}
		}
	}
	imtest.Eventually(t, "all QoS 1/2 messages", 10*time.Second, func() bool {
		return len(subc.received("bots/q/1")) == n && len(subc.received("bots/q/2")) == n
	})
	seen := map[byte]bool{}
	for _, p := range subc.received("bots/q/2") {
		if p.QoS != 2 || seen[p.Payload[0]] {
			t.Fatalf("QoS 2 delivery %+v (repeat: %v)", p, seen[p.Payload[0]])
		}
		seen[p.Payload[0]] = true
	}
	// Retained: a late subscriber gets the last value, flagged retained.
	// mochi acknowledges a publish before it fans it out, so a subscriber
	// that subscribes right after the PUBACK may also get the live copy
	// (not flagged retained) when the fan-out runs late: MQTT allows both.
	pub(t, dev, &paho.Publish{Topic: "devices/dev/state", QoS: 1, Retain: true, Payload: []byte("on")})
	late := dialV5(t, s, "dev", "dev:late", key, v5opts{clean: true})
	sub(t, late, "devices/dev/state", 1, 0)
	retained := func() bool {
		for _, p := range late.received("devices/dev/state") {
			if p.Retain && string(p.Payload) == "on" {
				return true
			}
		}
		return false
	}
	deadline := time.Now().Add(15 * time.Second)
	for !retained() {
		if time.Now().After(deadline) {
			// Say where it was lost: in the broker's retained store, or on the way.
			t.Fatalf("no retained value after 15 s: the broker retains %d message(s) on devices/dev/state, the late subscriber got %+v",
				len(s.Broker.Server.Topics.Messages("devices/dev/state")), late.received("devices/dev/state"))
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := late.received("devices/dev/state"); len(got) > 2 {
		t.Fatalf("the late subscriber got %d copies: %+v", len(got), got)
	}
}

func TestConformanceWillWithDelay(t *testing.T) {
	s, key := conformanceServer(t)
	watch := dialV5(t, s, "alice", "alice:watch", imtest.Password, v5opts{clean: true})
	sub(t, watch, "bots/status/dev", 1, 0)
	dev := dialV5(t, s, "dev", "dev:a", key, v5opts{clean: true, expiry: 10, delay: 1,
		will: &paho.WillMessage{Topic: "bots/status/dev", QoS: 1, Payload: []byte("gone")}})
	cut := time.Now()
	dev.conn.Close() // abrupt: no DISCONNECT, so the will is due
	imtest.Eventually(t, "delayed will", 10*time.Second, func() bool { return len(watch.received("bots/status/dev")) == 1 })
	if d := time.Since(cut); d < 900*time.Millisecond {
		t.Fatalf("will sent after %v, before its 1 s delay", d)
	}
	// A will into im/ is refused at CONNECT.
	conn, _ := net.Dial("tcp", s.MQTTAddr.String())
	defer conn.Close()
	c := paho.NewClient(paho.ClientConfig{Conn: conn})
	ca, _ := c.Connect(context.Background(), &paho.Connect{ClientID: "dev:b", Username: "dev", UsernameFlag: true, Password: []byte(key), PasswordFlag: true,
		CleanStart: true, WillMessage: &paho.WillMessage{Topic: "im/presence/dev", Payload: []byte(`{"status":"online"}`)}})
	if ca == nil || ca.ReasonCode != 0x87 || ca.Properties == nil || !strings.Contains(ca.Properties.ReasonString, "will topic") {
		t.Fatalf("will into im/: %+v", ca)
	}
}

func TestConformanceSessionAndMessageExpiry(t *testing.T) {
	s, key := conformanceServer(t)
	d := dialV5(t, s, "dev", "dev:s", key, v5opts{clean: true, expiry: 300})
	sub(t, d, "bots/inbox", 1, 0)
	d.Disconnect(&paho.Disconnect{})
	d.conn.Close()
	sender := dialV5(t, s, "alice", "alice:p", imtest.Password, v5opts{clean: true})
	messageExpiry(t, s, "dev:s", "bots/inbox", sender, func() *v5client {
		return dialV5(t, s, "dev", "dev:s", key, v5opts{clean: false, expiry: 300})
	})
}

// messageExpiry publishes from sender to topic, whose subscriber's session
// (session key) is offline, one message expiring after 1 s and one not;
// once the expired one has left the offline queue (mochi expires on a 1 s
// tick), the session is resumed and must get only the other (and a fence).
func messageExpiry(t *testing.T, s *imtest.Server, key, topic string, sender *v5client, resume func() *v5client) {
	t.Helper()
	pub(t, sender, &paho.Publish{Topic: topic, QoS: 1, Payload: []byte("expires"), Properties: &paho.PublishProperties{MessageExpiry: u32(1)}})
	pub(t, sender, &paho.Publish{Topic: topic, QoS: 1, Payload: []byte("keeps")})
	queued := func() int {
		cl, ok := s.Broker.Server.Clients.Get(key)
		if !ok {
			t.Fatalf("session %s is gone", key)
		}
		return cl.State.Inflight.Len()
	}
	imtest.Eventually(t, "both messages queued", 5*time.Second, func() bool { return queued() == 2 })
	imtest.Eventually(t, "the expired message leaves the offline queue", 10*time.Second, func() bool { return queued() == 1 })
	back := resume()
	imtest.Eventually(t, "queued message after resume", 5*time.Second, func() bool { return len(back.received(topic)) >= 1 })
	pub(t, sender, &paho.Publish{Topic: topic, QoS: 1, Payload: []byte("fence")})
	imtest.Eventually(t, "fence", 5*time.Second, func() bool { return len(back.received(topic)) >= 2 })
	var bodies []string
	for _, p := range back.received(topic) {
		bodies = append(bodies, string(p.Payload))
	}
	if strings.Join(bodies, ",") != "keeps,fence" {
		t.Fatalf("after resume got %v (the expired message must be gone)", bodies)
	}
}

func TestConformanceSharedSubscriptionsBalance(t *testing.T) {
	s, _ := conformanceServer(t)
	w1 := dialV5(t, s, "alice", "alice:w1", imtest.Password, v5opts{clean: true})
	w2 := dialV5(t, s, "alice", "alice:w2", imtest.Password, v5opts{clean: true})
	p := dialV5(t, s, "alice", "alice:p", imtest.Password, v5opts{clean: true})
	sharedBalanced(t, p, "workers", "bots/jobs", 40, w1, w2)
}

// sharedBalanced subscribes w1 and w2 to $share/{group}/{topic}, publishes
// n messages to topic from p, and checks each arrives once, on both workers.
func sharedBalanced(t *testing.T, p *v5client, group, topic string, n int, w1, w2 *v5client) {
	t.Helper()
	sub(t, w1, "$share/"+group+"/"+topic, 1, 0)
	sub(t, w2, "$share/"+group+"/"+topic, 1, 0)
	for i := 0; i < n; i++ {
		pub(t, p, &paho.Publish{Topic: topic, QoS: 1, Payload: []byte{byte(i)}})
	}
	imtest.Eventually(t, "every shared message once", 10*time.Second, func() bool {
		return len(w1.received(topic))+len(w2.received(topic)) == n
	})
	if len(w1.received(topic)) == 0 || len(w2.received(topic)) == 0 {
		t.Fatalf("not balanced: %d / %d", len(w1.received(topic)), len(w2.received(topic)))
	}
}

func TestConformanceSubscriptionIDsTopicAliasesAndAcks(t *testing.T) {
	s, key := conformanceServer(t)
	c := dialV5(t, s, "dev", "dev:x", key, v5opts{clean: true})
	sub(t, c, "devices/dev/a/#", 1, 7)
	// Topic alias: the second publish carries only the alias.
	pub(t, c, &paho.Publish{Topic: "devices/dev/a/b", QoS: 1, Payload: []byte("1"), Properties: &paho.PublishProperties{TopicAlias: u16(3)}})
	r := pub(t, c, &paho.Publish{Topic: "", QoS: 1, Payload: []byte("2"),
		Properties: &paho.PublishProperties{TopicAlias: u16(3), User: paho.UserProperties{{Key: "k", Value: "v"}}}})
	imtest.Eventually(t, "both publishes", 5*time.Second, func() bool { return len(c.received("devices/dev/a/b")) == 2 })
	for _, p := range c.received("devices/dev/a/b") {
		if p.Properties == nil || p.Properties.SubscriptionIdentifier == nil || *p.Properties.SubscriptionIdentifier != 7 {
			t.Fatalf("subscription identifier missing: %+v", p.Properties)
		}
	}
	if r.Properties != nil && len(r.Properties.User) > 0 {
		t.Fatalf("PUBACK inherited user properties %+v", r.Properties.User)
	}
}

func TestConformanceMaximumPacketSize(t *testing.T) {
	s, key := conformanceServer(t)
	c := dialV5(t, s, "dev", "dev:big", key, v5opts{clean: true})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := c.Publish(ctx, &paho.Publish{Topic: "bots/big", QoS: 1, Payload: make([]byte, 300<<10)})
	if err == nil {
		t.Fatal("a 300 KiB packet was accepted (limit 256 KiB)")
	}
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("connection not closed after an oversize packet")
	}
}

// paho suite's account: the whole operator namespace, but test/nosubscribe.
var wholeNamespace = []acl.Rule{
	{User: "paho", Access: "deny", Topics: []string{"test/nosubscribe"}},
	{User: "paho", Access: "readwrite", Topics: []string{"#"}},
}

// TestConformanceWildcardFiltersInAnOpenedNamespace: an account that a rule
// opens the whole operator namespace to ("#") subscribes to "#", "+/+" and
// "TopicA/+" and gets what the Paho interoperability suite expects, while
// im/ stays closed: it gets nothing of other users' inboxes, and a user
// without such a rule still cannot subscribe to "#".
func TestConformanceWildcardFiltersInAnOpenedNamespace(t *testing.T) {
	s := imtest.Start(t, "", func(c *imtestConfig) { c.Rules = wholeNamespace })
	s.User("paho")
	s.User("alice")
	s.User("bob")
	c := dialV5(t, s, "paho", "myclientid", imtest.Password, v5opts{clean: true})
	for _, f := range []string{"#", "+/+", "TopicA/+"} {
		sub(t, c, f, 1, 0)
	}
	// paho.golang reports a refusal as an error, with the SUBACK.
	if sa, err := c.Subscribe(context.Background(), &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "test/nosubscribe", QoS: 1}}}); sa == nil || sa.Reasons[0] < 0x80 {
		t.Fatalf("subscribe test/nosubscribe: %v %+v, want a refusal", err, sa)
	}
	for _, topic := range []string{"TopicA", "TopicA/B", "Topic/C", "/TopicA"} {
		pub(t, c, &paho.Publish{Topic: topic, QoS: 1, Payload: []byte(topic)})
	}
	// alice writes to bob: nothing of it may reach paho's "#".
	alice := s.MustConnect("alice", imtest.ClientOpts{NoSub: true})
	alice.Publish("im/u/bob/dm/alice", 1, "private")
	alice.Publish("im/u/bob/typing/alice", 0, `{"state":"typing"}`)
	pub(t, c, &paho.Publish{Topic: "fence", QoS: 1, Payload: []byte("fence")})
	imtest.Eventually(t, "the fence on #", 5*time.Second, func() bool { return len(c.received("fence")) == 1 })
	want := map[string]int{ // "#" matches all; "+/+" two levels; "TopicA/+" one
		"TopicA": 1, "TopicA/B": 3, "Topic/C": 2, "/TopicA": 2, "fence": 1,
	}
	got := map[string]int{}
	for _, p := range c.received("") {
		if strings.HasPrefix(p.Topic, "im/u/bob/") {
			t.Fatalf("paho received bob's %s", p.Topic)
		}
		if !strings.HasPrefix(p.Topic, "im/") {
			got[p.Topic]++
		}
	}
	for topic, n := range want {
		// MQTT 5 allows one copy per matching subscription or one in all
		// [MQTT-3.3.4-2]; mochi sends one per client.
		if got[topic] != 1 && got[topic] != n {
			t.Errorf("%s: %d copies, want 1 or %d", topic, got[topic], n)
		}
	}
	// Without a rule covering it, "#" stays refused.
	b := dialV5(t, s, "bob", "bob-any", imtest.Password, v5opts{clean: true})
	if sa, err := b.Subscribe(context.Background(), &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "#", QoS: 1}}}); sa == nil || sa.Reasons[0] < 0x80 {
		t.Fatalf("bob's #: %v %+v, want a refusal", err, sa)
	}
}

// TestConformanceRetainedParentOfMultiLevelFilter: "bots/a/#" matches
// "bots/a" itself [MQTT-4.7.1-2], so a new subscription gets that topic's
// retained message too, once, with the retain flag, beside the ones below.
func TestConformanceRetainedParentOfMultiLevelFilter(t *testing.T) {
	s, _ := conformanceServer(t)
	s.User("bob")
	pubr := dialV5(t, s, "alice", "alice-retain", imtest.Password, v5opts{clean: true})
	for _, topic := range []string{"bots/a", "bots/a/b", "bots/ab"} {
		pub(t, pubr, &paho.Publish{Topic: topic, QoS: 1, Retain: true, Payload: []byte(topic)})
	}
	c := dialV5(t, s, "bob", "bob-retain", imtest.Password, v5opts{clean: true})
	sub(t, c, "bots/a/#", 1, 0)
	imtest.Eventually(t, "bots/a and bots/a/b", 5*time.Second, func() bool { return len(c.received("")) >= 2 })
	time.Sleep(200 * time.Millisecond) // a duplicate would come right after
	got := map[string]int{}
	for _, p := range c.received("") {
		if !p.Retain {
			t.Errorf("%s delivered without the retain flag", p.Topic)
		}
		got[p.Topic]++
	}
	if got["bots/a"] != 1 || got["bots/a/b"] != 1 || got["bots/ab"] != 0 || len(got) != 2 {
		t.Fatalf("retained on subscribe to bots/a/#: %v", got)
	}
}

package platform_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt311 "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/mqim/mqim/acl"
	"github.com/mqim/mqim/config"
	"github.com/mqim/mqim/internal/imtest"
)

// Conformance in the namespace examples/conformance/mqim.yaml opens to the
// account "paho", mounted at mnt/paho/: what the Eclipse Paho
// interoperability suites (3.1.1 and 5) check, with their client ids,
// topics and filters, as the project's own tests.

// suiteTopics are the suite's topic names.
var suiteTopics = []string{"TopicA", "TopicA/B", "Topic/C", "/TopicA", "client_test5/x"}

// mountServer runs a server with examples/conformance/mqim.yaml's mounts,
// rules and limits, plus, for the tests' own checks: "other" mounted at
// mnt/other/, and "alice", unmounted, who may read and write everything
// outside im/ (so she sees the mapped names). Users paho, other and alice
// exist, with imtest.Password.
func mountServer(t *testing.T, mods ...func(*imtestConfig)) *imtest.Server {
	t.Helper()
	example, err := config.Load([]string{"--config", "../examples/conformance/mqim.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	s := imtest.Start(t, "", append([]func(*imtestConfig){func(c *imtestConfig) {
		c.Mounts = append(example.Mounts, acl.Mount{User: "other", Mount: "other"})
		c.Rules = append(example.Rules,
			acl.Rule{User: "other", Access: "readwrite", Topics: []string{"mnt/other/#"}},
			acl.Rule{User: "alice", Access: "readwrite", Topics: []string{"#"}})
		c.Limits.PublishRate, c.Limits.ConnectRate = example.Limits.PublishRate, example.Limits.ConnectRate
	}}, mods...)...)
	for _, u := range []string{"paho", "other", "alice"} {
		s.User(u)
	}
	return s
}

func topicsOf(ps []*paho.Publish) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Topic)
	}
	sort.Strings(out)
	return out
}

// TestConformanceMountV5: a mounted MQTT 5 client sees its own topic names
// in every delivery (live, retained, shared, will), its "#" and "+/+" stay
// inside its mount (nothing of im/, of another mount, or of the unmounted
// namespace), "$TopicA/B" matches no "+/+", test/nosubscribe is refused,
// and subscription identifiers and the CONNACK's limits are there.
func TestConformanceMountV5(t *testing.T) {
	s := mountServer(t)
	c, ca := dialV5Ack(t, s, "paho", "myclientid", imtest.Password, v5opts{clean: true})
	if ca.Properties == nil || ca.Properties.MaximumPacketSize == nil || *ca.Properties.MaximumPacketSize != 256<<10 ||
		ca.Properties.TopicAliasMaximum == nil || *ca.Properties.TopicAliasMaximum == 0 {
		t.Fatalf("CONNACK does not advertise Maximum Packet Size and Topic Alias Maximum: %+v", ca.Properties)
	}
	sub(t, c, "#", 2, 1)
	sub(t, c, "+/+", 2, 2)
	sub(t, c, "TopicA/+", 2, 3)
	if sa, _ := c.Subscribe(context.Background(), &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "test/nosubscribe", QoS: 2}}}); sa == nil || sa.Reasons[0] != 0x87 {
		t.Fatalf("subscribe test/nosubscribe: %+v, want 0x87", sa)
	}
	alice := dialV5(t, s, "alice", "alice-watch", imtest.Password, v5opts{clean: true})
	sub(t, alice, "mnt/paho/#", 2, 0)

	for i, topic := range suiteTopics[:4] {
		pub(t, c, &paho.Publish{Topic: topic, QoS: byte(i % 3), Payload: []byte(topic)})
	}
	// "$TopicA/B" is not mapped: $-topics keep their meaning (no wildcard
	// filter matches them) and are not writable.
	// Its PUBACK has no reason string: mochi's would only repeat the
	// code's name, and strict clients take no properties on a PUBACK.
	if r, err := c.Publish(context.Background(), &paho.Publish{Topic: "$TopicA/B", QoS: 1, Payload: []byte("dollar")}); r == nil || r.ReasonCode != 0x87 ||
		(r.Properties != nil && r.Properties.ReasonString != "") {
		t.Fatalf("publish $TopicA/B: %+v %v, want reason 0x87 and no reason string", r, err)
	}
	// Other namespaces: another mount, the unmounted one, im/.
	other := dialV5(t, s, "other", "myclientid", imtest.Password, v5opts{clean: true})
	pub(t, other, &paho.Publish{Topic: "TopicA", QoS: 1, Payload: []byte("from other")})
	pub(t, alice, &paho.Publish{Topic: "TopicA", QoS: 1, Payload: []byte("from alice")})
	pub(t, alice, &paho.Publish{Topic: "im/u/paho/dm/alice", QoS: 1, Payload: []byte(`{"body":"hi"}`)})
	pub(t, c, &paho.Publish{Topic: "fence", QoS: 1, Payload: []byte("fence")})
	imtest.Eventually(t, "the fence", 5*time.Second, func() bool { return len(c.received("fence")) == 1 })

	want := map[string]int{"TopicA": 1, "TopicA/B": 1, "Topic/C": 1, "/TopicA": 1, "fence": 1}
	got := map[string]int{}
	for _, p := range c.received("") {
		if string(p.Payload) != p.Topic {
			t.Errorf("paho got %q on %s: not its own", p.Payload, p.Topic)
		}
		got[p.Topic]++
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("paho's #, +/+ and TopicA/+ got %v, want %v (one copy per message)", got, want)
	}
	for _, p := range c.received("TopicA") {
		if p.Properties == nil || p.Properties.SubscriptionIdentifier == nil || *p.Properties.SubscriptionIdentifier != 1 {
			t.Fatalf("TopicA (matching # only) without subscription identifier 1: %+v", p.Properties)
		}
	}
	// Stored and routed under the mount: alice sees the mapped names.
	imtest.Eventually(t, "alice sees the mount", 5*time.Second, func() bool { return len(alice.received("mnt/paho/fence")) == 1 })
	if g := strings.Join(topicsOf(alice.received("")), ","); g != "mnt/paho//TopicA,mnt/paho/Topic/C,mnt/paho/TopicA,mnt/paho/TopicA/B,mnt/paho/fence" {
		t.Fatalf("alice on mnt/paho/# got %s", g)
	}

	// Retained: stored as mnt/paho/TopicA/B, given back as TopicA/B.
	pub(t, c, &paho.Publish{Topic: "TopicA/B", QoS: 1, Retain: true, Payload: []byte("TopicA/B")})
	imtest.Eventually(t, "retained under the mount", 5*time.Second, func() bool {
		return len(s.Broker.Server.Topics.Messages("mnt/paho/TopicA/B")) == 1
	})
	c2 := dialV5(t, s, "paho", "myclientid2", imtest.Password, v5opts{clean: true})
	sub(t, c2, "TopicA/+", 1, 0)
	imtest.Eventually(t, "the retained message", 5*time.Second, func() bool {
		for _, p := range c2.received("TopicA/B") {
			if p.Retain {
				return true
			}
		}
		return false
	})
	pub(t, c, &paho.Publish{Topic: "TopicA/B", QoS: 1, Retain: true}) // clear it

	// Shared subscriptions: the group's filter is mapped inside $share/.
	w1 := dialV5(t, s, "paho", "w1", imtest.Password, v5opts{clean: true})
	w2 := dialV5(t, s, "paho", "w2", imtest.Password, v5opts{clean: true})
	sharedBalanced(t, c, "sharename", "client_test5/x", 30, w1, w2)

	// A will with a delay, mapped at CONNECT.
	wc := dialV5(t, s, "paho", "willclient", imtest.Password, v5opts{clean: true, expiry: 10, delay: 1,
		will: &paho.WillMessage{Topic: "Topic/C", QoS: 1, Payload: []byte("gone")}})
	cut := time.Now()
	wc.conn.Close()
	imtest.Eventually(t, "the delayed will", 10*time.Second, func() bool {
		return len(c.received("Topic/C")) == 2 && len(alice.received("mnt/paho/Topic/C")) == 2
	})
	if d := time.Since(cut); d < 900*time.Millisecond {
		t.Fatalf("will sent after %v, before its 1 s delay", d)
	}
	if w := c.received("Topic/C")[1]; string(w.Payload) != "gone" {
		t.Fatalf("will: %+v", w)
	}
}

// TestConformanceMount311: the 3.1.1 suite's clients (paho.mqtt.golang)
// with its fixed client ids, QoS 0/1/2 on its topics, test/nosubscribe
// refused with 0x80, "$TopicA/B" matching no "+/+", a will.
func TestConformanceMount311(t *testing.T) {
	s := mountServer(t)
	got := make(chan mqtt311.Message, 100)
	dial := func(id string, clean bool, will string) mqtt311.Client {
		o := mqtt311.NewClientOptions().AddBroker(s.MQTT).SetClientID(id).SetUsername("paho").SetPassword(imtest.Password).
			SetCleanSession(clean).SetAutoReconnect(false).SetConnectRetry(false).SetProtocolVersion(4).
			SetDefaultPublishHandler(func(_ mqtt311.Client, m mqtt311.Message) { got <- m })
		if will != "" {
			o.SetWill(will, "gone", 1, false)
		}
		c := mqtt311.NewClient(o)
		if tk := c.Connect(); !tk.WaitTimeout(10*time.Second) || tk.Error() != nil {
			t.Fatalf("connect %q: %v", id, tk.Error())
		}
		t.Cleanup(func() { c.Disconnect(0) })
		return c
	}
	wait := func(tk mqtt311.Token) {
		t.Helper()
		if !tk.WaitTimeout(10*time.Second) || tk.Error() != nil {
			t.Fatalf("%T: %v", tk, tk.Error())
		}
	}
	for _, id := range []string{"myclientid2", "clean retained", ""} {
		dial(id, true, "").Disconnect(100)
	}
	c := dial("myclientid", false, "")
	tk := c.SubscribeMultiple(map[string]byte{"+/+": 2, "TopicA/+": 2, "test/nosubscribe": 2}, nil)
	wait(tk)
	if codes := tk.(*mqtt311.SubscribeToken).Result(); codes["test/nosubscribe"] != 0x80 || codes["+/+"] != 2 || codes["TopicA/+"] != 2 {
		t.Fatalf("SUBACK %v, want test/nosubscribe 0x80 and the others granted QoS 2", codes)
	}
	wait(c.Publish("$TopicA/B", 1, false, "dollar")) // acknowledged and dropped: no disconnect
	for q, topic := range []string{"TopicA/B", "Topic/C", "/TopicA"} {
		wait(c.Publish(topic, byte(q), false, topic))
	}
	var topics []string
	for len(topics) < 3 {
		select {
		case m := <-got:
			if m.Topic() != string(m.Payload()) {
				t.Fatalf("got %q on %s", m.Payload(), m.Topic())
			}
			topics = append(topics, fmt.Sprintf("%s@%d", m.Topic(), m.Qos()))
		case <-time.After(10 * time.Second):
			t.Fatalf("only %v arrived", topics)
		}
	}
	sort.Strings(topics)
	if strings.Join(topics, ",") != "/TopicA@2,Topic/C@1,TopicA/B@0" {
		t.Fatalf("got %v", topics)
	}
	// A will, mapped: the watcher sees it under its own name.
	dial("myclientid2", true, "TopicA/B")
	wcl, ok := s.Broker.Server.Clients.Get("paho:myclientid2")
	if !ok {
		t.Fatal("no session paho:myclientid2")
	}
	wcl.Net.Conn.Close() // abrupt: the will is due
	select {
	case m := <-got:
		if m.Topic() != "TopicA/B" || string(m.Payload()) != "gone" {
			t.Fatalf("will: %s %q", m.Topic(), m.Payload())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no will")
	}
	if !c.IsConnectionOpen() {
		t.Fatal("the client was disconnected")
	}
}

// TestConformanceMountSessionExpiry: an MQTT 5 session with expiry 0 ends
// at disconnect; with 1 and 5 s it is resumable before that and gone
// after it (mochi expires sessions on a 1 s tick with whole-second times: never
// early, at most about 2 s late).
func TestConformanceMountSessionExpiry(t *testing.T) {
	s := mountServer(t)
	present := func(id string, expiry uint32) bool {
		conn, err := net.Dial("tcp", s.MQTTAddr.String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		c := paho.NewClient(paho.ClientConfig{Conn: conn})
		ca, err := c.Connect(context.Background(), &paho.Connect{ClientID: id, Username: "paho", UsernameFlag: true,
			Password: []byte(imtest.Password), PasswordFlag: true, Properties: &paho.ConnectProperties{SessionExpiryInterval: u32(expiry)}})
		if err != nil || ca.ReasonCode != 0 {
			t.Fatalf("connect %s: %v %+v", id, err, ca)
		}
		c.Disconnect(&paho.Disconnect{})
		return ca.SessionPresent
	}
	gone := func(key string) bool { _, ok := s.Broker.Server.Clients.Get(key); return !ok }
	present("s0", 0)
	if present("s0", 0) {
		t.Fatal("a session with expiry 0 outlived its connection")
	}
	for _, expiry := range []uint32{1, 5} {
		id := fmt.Sprintf("s%d", expiry)
		present(id, expiry)
		if !present(id, expiry) {
			t.Fatalf("expiry %d s: the session was gone at once", expiry)
		}
		cut := time.Now()
		imtest.Eventually(t, fmt.Sprintf("session of %d s expires", expiry), time.Duration(expiry+4)*time.Second, func() bool { return gone("paho:" + id) })
		d := time.Since(cut)
		if d < time.Duration(expiry)*time.Second-100*time.Millisecond || d > time.Duration(expiry+3)*time.Second {
			t.Fatalf("session of %d s expired after %v", expiry, d)
		}
		t.Logf("session expiry %d s: gone after %v", expiry, d.Round(10*time.Millisecond))
		if present(id, 0) {
			t.Fatalf("expiry %d s: session present after it expired", expiry)
		}
	}
}

// TestConformanceMountMessageExpiry: a queued message past its expiry is
// not delivered when the session resumes; one without expiry is.
func TestConformanceMountMessageExpiry(t *testing.T) {
	s := mountServer(t)
	d := dialV5(t, s, "paho", "myclientid", imtest.Password, v5opts{clean: true, expiry: 300})
	sub(t, d, "TopicA", 1, 0)
	d.Disconnect(&paho.Disconnect{})
	d.conn.Close()
	sender := dialV5(t, s, "paho", "myclientid2", imtest.Password, v5opts{clean: true})
	messageExpiry(t, s, "paho:myclientid", "TopicA", sender, func() *v5client {
		return dialV5(t, s, "paho", "myclientid", imtest.Password, v5opts{expiry: 300})
	})
}

// dialRaw5 connects a raw MQTT 5 client as paho with the CONNECT's
// properties and keepalive.
func dialRaw5(t *testing.T, s *imtest.Server, id string, keepalive uint16, props packets.Properties) (*imtest.Raw, packets.Packet) {
	t.Helper()
	r, code, err := imtest.DialRawSession(s.MQTT, 5, packets.ConnectParams{ClientIdentifier: id, Username: []byte("paho"), UsernameFlag: true,
		Password: []byte(imtest.Password), PasswordFlag: true, Keepalive: keepalive}, true, props)
	if err != nil || code != 0 {
		t.Fatalf("connect %s: %#x %v", id, code, err)
	}
	t.Cleanup(func() { r.Close() })
	return r, r.Connack
}

func writePacket(t *testing.T, r *imtest.Raw, pk packets.Packet, enc func(*packets.Packet, *bytes.Buffer) error) {
	t.Helper()
	pk.ProtocolVersion = 5
	var b bytes.Buffer
	if err := enc(&pk, &b); err != nil {
		t.Fatal(err)
	}
	if err := r.Write(b.Bytes()); err != nil {
		t.Fatal(err)
	}
}

// readUntil reads packets until one satisfies ok (or fails the test).
func readUntil(t *testing.T, r *imtest.Raw, what string, ok func(packets.Packet) bool) packets.Packet {
	t.Helper()
	for {
		pk, err := r.Read(10 * time.Second)
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		if ok(pk) {
			return pk
		}
	}
}

// TestConformanceMountTopicAliases: inbound aliases resolve to the
// client's name and map once (the second publish, alias only, lands on
// the same topic); outbound aliases carry the client's own name the first
// time and none after; an alias of 0, or one the connection never set up,
// gets DISCONNECT 0x94.
func TestConformanceMountTopicAliases(t *testing.T) {
	s := mountServer(t)
	r, _ := dialRaw5(t, s, "alias", 30, packets.Properties{TopicAliasMaximum: 8})
	if codes, err := r.Subscribe(0, "TopicA/B"); err != nil || codes[0] != 0 {
		t.Fatalf("subscribe: %v %v", codes, err)
	}
	for i, topic := range []string{"TopicA/B", "", ""} {
		writePacket(t, r, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish}, TopicName: topic, Payload: []byte{byte(i)},
			Properties: packets.Properties{TopicAlias: 2, TopicAliasFlag: true}}, (*packets.Packet).PublishEncode)
	}
	var seen []string
	for i := 0; i < 3; i++ {
		pk := readUntil(t, r, "publish", func(p packets.Packet) bool { return p.FixedHeader.Type == packets.Publish })
		if pk.Payload[0] != byte(i) || pk.Properties.TopicAlias == 0 {
			t.Fatalf("publish %d: %+v", i, pk)
		}
		seen = append(seen, fmt.Sprintf("%q/%d", pk.TopicName, pk.Properties.TopicAlias))
	}
	if seen[0] != `"TopicA/B"/1` || seen[1] != `""/1` || seen[2] != `""/1` {
		t.Fatalf("outbound topics/aliases %v, want the name with alias 1, then alias 1 alone", seen)
	}
	if n := len(s.Broker.Server.Topics.Subscribers("mnt/paho/mnt/paho/TopicA/B").Subscriptions); n != 0 {
		t.Fatal("an alias was mapped twice")
	}
	// An alias the connection never set up (aliases end with it): 0x94.
	r2, _ := dialRaw5(t, s, "alias2", 30, packets.Properties{TopicAliasMaximum: 8})
	writePacket(t, r2, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, PacketID: 1,
		Properties: packets.Properties{TopicAlias: 2, TopicAliasFlag: true}}, (*packets.Packet).PublishEncode)
	if pk := readUntil(t, r2, "DISCONNECT", func(p packets.Packet) bool { return p.FixedHeader.Type == packets.Disconnect }); pk.ReasonCode != 0x94 {
		t.Fatalf("unknown alias: DISCONNECT %#x, want 0x94", pk.ReasonCode)
	}
	// Topic alias 0 is invalid [MQTT-3.3.2-8]: DISCONNECT 0x94.
	// (mochi's encoder leaves an alias 0 out: the bytes by hand.)
	if err := r.Write(append(append([]byte{0x32, 14, 0, 6}, "TopicA"...), 0, 9, 3, 0x23, 0, 0)); err != nil {
		t.Fatal(err)
	}
	if pk := readUntil(t, r, "DISCONNECT", func(p packets.Packet) bool { return p.FixedHeader.Type == packets.Disconnect }); pk.ReasonCode != 0x94 {
		t.Fatalf("alias 0: DISCONNECT %#x, want 0x94", pk.ReasonCode)
	}
}

// TestConformanceMountReceiveMaximum: a client with more QoS 2 publishes
// unreleased than the server's Receive Maximum gets DISCONNECT 0x93.
func TestConformanceMountReceiveMaximum(t *testing.T) {
	s := mountServer(t)
	r, ack := dialRaw5(t, s, "flood", 30, packets.Properties{})
	rm := int(ack.Properties.ReceiveMaximum)
	if rm == 0 {
		rm = 65535
	}
	var b bytes.Buffer
	for i := 1; i <= rm+1; i++ {
		pk := packets.Packet{ProtocolVersion: 5, FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 2}, PacketID: uint16(i), TopicName: "TopicA", Payload: []byte("x")}
		if err := pk.PublishEncode(&b); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Write(b.Bytes()); err != nil {
		t.Fatal(err)
	}
	// Release each one as its PUBREC comes, as a client does: the PUBRELs
	// race the server's DISCONNECT, which must still arrive (the server
	// reads them away before it closes: no reset).
	pubrecs := 0
	pk := readUntil(t, r, "DISCONNECT", func(p packets.Packet) bool {
		if p.FixedHeader.Type == packets.Pubrec {
			pubrecs++
			_ = r.Write([]byte{0x62, 0x02, byte(p.PacketID >> 8), byte(p.PacketID)})
		}
		return p.FixedHeader.Type == packets.Disconnect
	})
	if pk.ReasonCode != 0x93 || pubrecs != rm {
		t.Fatalf("DISCONNECT %#x after %d PUBRECs; want 0x93 after Receive Maximum %d", pk.ReasonCode, pubrecs, rm)
	}
}

// TestConformanceMountKeepalive: a client silent for 1.5x its keepalive is
// disconnected (its will published); one that pings is not.
func TestConformanceMountKeepalive(t *testing.T) {
	s := mountServer(t)
	watch := dialV5(t, s, "paho", "watch", imtest.Password, v5opts{clean: true})
	sub(t, watch, "Topic/C", 1, 0)
	pinger, _ := dialRaw5(t, s, "pinger", 1, packets.Properties{})
	pinged := make(chan error, 1)
	go func() {
		for start := time.Now(); time.Since(start) < 3*time.Second; time.Sleep(300 * time.Millisecond) {
			if err := pinger.Ping(2 * time.Second); err != nil {
				pinged <- err
				return
			}
		}
		pinged <- nil
	}()
	r, code, err := imtest.DialRawSession(s.MQTT, 4, packets.ConnectParams{ClientIdentifier: "silent", Username: []byte("paho"), UsernameFlag: true,
		Password: []byte(imtest.Password), PasswordFlag: true, Keepalive: 1,
		WillFlag: true, WillTopic: "Topic/C", WillPayload: []byte("timed out"), WillQos: 1}, true, packets.Properties{})
	if err != nil || code != 0 {
		t.Fatalf("connect: %#x %v", code, err)
	}
	defer r.Close()
	cut := time.Now()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := r.Read(time.Until(deadline)); err != nil {
			break // closed (or the deadline: checked below)
		}
	}
	if d := time.Since(cut); d < time.Second || d > 5*time.Second {
		t.Fatalf("a client silent with keepalive 1 s was closed after %v", d)
	}
	imtest.Eventually(t, "the will of the timed-out client", 5*time.Second, func() bool { return len(watch.received("Topic/C")) == 1 })
	if err := <-pinged; err != nil {
		t.Fatalf("a client that pings every 300 ms with keepalive 1 s was dropped: %v", err)
	}
}

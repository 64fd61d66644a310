package platform_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/mqim/mqim/internal/imtest"
)

// Loopback addresses stand for distinct client IPs (Linux routes 127/8 to lo).
var (
	attackerIP = net.IPv4(127, 0, 0, 1)
	ownerIP    = net.IPv4(127, 0, 0, 2)
)

// connack is the answer to a CONNECT.
type connack struct {
	code   byte
	reason string
	conn   net.Conn // open after success; the caller closes it
}

// connectFrom sends an MQTT CONNECT (version 4 = 3.1.1, or 5) from src and
// reads the CONNACK.
func connectFrom(src net.IP, addr string, version byte, clientID, user, password string) (connack, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: src}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", strings.TrimPrefix(addr, "tcp://"))
	if err != nil {
		return connack{}, err
	}
	name := "MQTT"
	pk := packets.Packet{ProtocolVersion: version, FixedHeader: packets.FixedHeader{Type: packets.Connect},
		Connect: packets.ConnectParams{ProtocolName: []byte(name), ClientIdentifier: clientID, Keepalive: 30, Clean: true,
			Username: []byte(user), UsernameFlag: true, Password: []byte(password), PasswordFlag: true}}
	var b bytes.Buffer
	if err := pk.ConnectEncode(&b); err != nil {
		c.Close()
		return connack{}, err
	}
	c.SetDeadline(time.Now().Add(60 * time.Second))
	if _, err := c.Write(b.Bytes()); err != nil {
		c.Close()
		return connack{}, err
	}
	r := bufio.NewReader(c)
	hb, err := r.ReadByte()
	if err != nil {
		c.Close()
		return connack{}, fmt.Errorf("read connack: %w", err)
	}
	ack := packets.Packet{ProtocolVersion: version}
	if err := ack.FixedHeader.Decode(hb); err != nil || ack.FixedHeader.Type != packets.Connack {
		c.Close()
		return connack{}, fmt.Errorf("not a CONNACK: %#x %v", hb, err)
	}
	n, _ := r.ReadByte() // a CONNACK's remaining length fits one byte here
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		c.Close()
		return connack{}, err
	}
	if err := ack.ConnackDecode(body); err != nil {
		c.Close()
		return connack{}, err
	}
	out := connack{code: ack.ReasonCode, reason: ack.Properties.ReasonString}
	if out.code == 0 {
		c.SetDeadline(time.Time{})
		out.conn = c
	} else {
		c.Close()
	}
	return out, nil
}

// postFrom POSTs a JSON body from src and returns status, Retry-After and body.
func postFrom(src net.IP, url, token, body string) (int, string, string) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: src}}
	cl := &http.Client{Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}, Timeout: 60 * time.Second}
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := cl.Do(req)
	if err != nil {
		return 0, "", err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Retry-After"), string(b)
}

func loginBody(user, password string) string {
	return fmt.Sprintf(`{"user":%q,"password":%q}`, user, password)
}

// TestLoginThrottle: an attacker hammering alice's account from one IP is
// answered "retry later" at once (HTTP 429 + Retry-After, MQTT 5 CONNACK 0x9F
// with a reason string, MQTT 3.1.1 0x03), while alice's correct password from
// another IP works over HTTP and MQTT, and a token still connects from the
// attacker's IP (tokens cost no KDF and are not throttled).
func TestLoginThrottle(t *testing.T) {
	s := imtest.Start(t, "", func(c *imtestConfig) {
		c.Limits.LoginIPRate, c.Limits.LoginIPBurst = 0.01, 5
		c.Limits.LoginBackoffMax = time.Minute
		c.Limits.LoginAccountRate, c.Limits.LoginAccountBurst = 0.01, 3
	})
	tok := s.User("alice")
	var http429, v5, v3 bool
	for i := 0; i < 20 && !(http429 && v5 && v3); i++ {
		code, retry, body := postFrom(attackerIP, s.HTTP+"/api/v1/login", "", loginBody("alice", "wrong-password"))
		switch code {
		case 401:
		case 429:
			if retry == "" || !strings.Contains(body, `"rate_limited"`) {
				t.Fatalf("429 without Retry-After or code: %q %s", retry, body)
			}
			http429 = true
		default:
			t.Fatalf("attempt %d: HTTP %d %s", i, code, body)
		}
		a, err := connectFrom(attackerIP, s.MQTT, 5, "alice:x", "alice", "wrong-password")
		if err != nil {
			t.Fatal(err)
		}
		switch a.code {
		case 0x86:
		case 0x9F:
			if !strings.Contains(a.reason, "retry in") {
				t.Fatalf("0x9F reason %q", a.reason)
			}
			v5 = true
		default:
			t.Fatalf("v5 CONNACK %#x %q", a.code, a.reason)
		}
		a, err = connectFrom(attackerIP, s.MQTT, 4, "alice:x", "alice", "wrong-password")
		if err != nil {
			t.Fatal(err)
		}
		switch a.code {
		case 0x04, 0x05:
		case 0x03:
			v3 = true
		default:
			t.Fatalf("3.1.1 CONNACK %#x", a.code)
		}
	}
	if !http429 || !v5 || !v3 {
		t.Fatalf("never throttled: http %v, v5 %v, v3 %v", http429, v5, v3)
	}
	// The owner, from a clean IP, gets in at once, more than once.
	for range 3 {
		if code, _, body := postFrom(ownerIP, s.HTTP+"/api/v1/login", "", loginBody("alice", imtest.Password)); code != 200 {
			t.Fatalf("owner login while throttled elsewhere: %d %s", code, body)
		}
		a, err := connectFrom(ownerIP, s.MQTT, 5, "alice:phone", "alice", imtest.Password)
		if err != nil || a.code != 0 {
			t.Fatalf("owner CONNECT: %#x %q %v", a.code, a.reason, err)
		}
		a.conn.Close()
	}
	// A token is not a password attempt: it connects from the throttled IP.
	a, err := connectFrom(attackerIP, s.MQTT, 5, "alice:laptop", "alice", tok)
	if err != nil || a.code != 0 {
		t.Fatalf("token CONNECT from the throttled IP: %#x %q %v", a.code, a.reason, err)
	}
	a.conn.Close()
	// Registration costs the KDF too and counts for the IP: the IP's
	// bucket (burst 5) runs dry.
	for i := 0; ; i++ {
		code, retry, body := postFrom(attackerIP, s.HTTP+"/api/v1/register", "", loginBody(fmt.Sprintf("newcomer%d", i), "a fine passphrase"))
		if code == 429 && retry != "" {
			break
		}
		if code != 201 || i == 5 {
			t.Fatalf("registration %d from one IP: %d %q %s", i, code, retry, body)
		}
	}
}

// TestLoginKDFBusy: with one KDF slot and no queue, concurrent password
// checks beyond the slot are answered "busy" at once (HTTP 503 + Retry-After
// and code busy, MQTT 5 CONNACK 0x89, MQTT 3.1.1 0x03) instead of each
// holding another 32 MiB; a token login needs no slot.
func TestLoginKDFBusy(t *testing.T) {
	s := imtest.Start(t, "", func(c *imtestConfig) { c.Limits.KDFSlots, c.Limits.KDFQueue = 1, 0 })
	tok := s.User("alice")
	seen := map[string]bool{}
	var mu sync.Mutex
	imtest.Eventually(t, "busy answers over HTTP, MQTT 5 and 3.1.1", 30*time.Second, func() bool {
		var wg sync.WaitGroup
		for i := range 12 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var key string
				switch i % 3 {
				case 0:
					code, retry, body := postFrom(attackerIP, s.HTTP+"/api/v1/login", "", loginBody("alice", "wrong-password"))
					if code == 503 && retry != "" && strings.Contains(body, `"busy"`) {
						key = "http"
					} else if code != 401 {
						t.Errorf("HTTP %d %q %s", code, retry, body)
					}
				case 1:
					a, err := connectFrom(attackerIP, s.MQTT, 5, "alice:x", "alice", "wrong-password")
					if err == nil && a.code == 0x89 && strings.Contains(a.reason, "busy") {
						key = "v5"
					} else if err != nil || a.code != 0x86 {
						t.Errorf("v5: %#x %q %v", a.code, a.reason, err)
					}
				case 2:
					a, err := connectFrom(attackerIP, s.MQTT, 4, "alice:x", "alice", "wrong-password")
					if err == nil && a.code == 0x03 {
						key = "v3"
					} else if err != nil || (a.code != 0x04 && a.code != 0x05) {
						t.Errorf("3.1.1: %#x %v", a.code, err)
					}
				}
				mu.Lock()
				seen[key] = true
				mu.Unlock()
			}()
		}
		// Tokens never wait for a KDF slot.
		a, err := connectFrom(ownerIP, s.MQTT, 5, "alice:phone", "alice", tok)
		if err != nil || a.code != 0 {
			t.Errorf("token CONNECT during the storm: %#x %v", a.code, err)
		} else {
			a.conn.Close()
		}
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		return seen["http"] && seen["v5"] && seen["v3"]
	})
}

// TestPasswordsThatLookLikeCredentials: a password with two dots (once taken
// for a JWT on CONNECT and always refused) or with the API key prefix works
// over MQTT; an expired or revoked token is still refused as a token.
func TestPasswordsThatLookLikeCredentials(t *testing.T) {
	s := imtest.Start(t, "")
	for i, pw := range []string{
		"my.long.passphrase-with-two-dots-and-over-40-bytes",
		"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.not-a-signature-at-all",
		"mqk_0123456789ab_00ff-not-a-key",
	} {
		user := fmt.Sprintf("dots%d", i)
		s.MustAPI(201, "POST", "/api/v1/register", "", map[string]string{"user": user, "password": pw}, nil)
		a, err := connectFrom(ownerIP, s.MQTT, 5, user+":dev", user, pw)
		if err != nil || a.code != 0 {
			t.Fatalf("CONNECT with password %q: %#x %q %v", pw, a.code, a.reason, err)
		}
		a.conn.Close()
		s.MustAPI(200, "POST", "/api/v1/login", "", map[string]string{"user": user, "password": pw}, nil)
	}
}

// TestPasswordPolicy: weak, malformed and invalid UTF-8 passwords are refused
// at registration (and password change) with a clear message, never stored
// with U+FFFD in place of what the client sent.
func TestPasswordPolicy(t *testing.T) {
	s := imtest.Start(t, "")
	cases := []struct {
		name, body string
		status     int
		msg        string
	}{
		{"too short", loginBody("pat", "abc123"), 400, "8-256 bytes"},
		{"the user id", loginBody("patricia", "patricia"), 400, "user id"},
		{"contains the user id", loginBody("patricia", "patricia1990!"), 400, "user id"},
		{"common", loginBody("pat", "password1"), 400, "too common"},
		{"common, capitalised", loginBody("pat", "Qwerty123"), 400, "too common"},
		{"keyboard walk", loginBody("pat", "1q2w3e4r"), 400, "too common"},
		{"few characters", loginBody("pat", "abababab"), 400, "different characters"},
		{"invalid UTF-8", "{\"user\":\"pat\",\"password\":\"caf\xe9 au lait\"}", 400, "UTF-8"},
		{"lone surrogate", `{"user":"pat","password":"caf\ud800 au lait"}`, 400, "UTF-8"},
		{"fine", loginBody("pat", "caf\u00e9 au lait"), 201, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, _, body := postFrom(ownerIP, s.HTTP+"/api/v1/register", "", c.body)
			if code != c.status || !strings.Contains(body, c.msg) {
				t.Fatalf("register: %d %s, want %d containing %q", code, body, c.status, c.msg)
			}
		})
	}
	// The stored password is exactly what was sent.
	if code, _, body := postFrom(ownerIP, s.HTTP+"/api/v1/login", "", "{\"user\":\"pat\",\"password\":\"caf\xe9 au lait\"}"); code != 400 {
		t.Fatalf("login with invalid UTF-8: %d %s", code, body)
	}
	a, err := connectFrom(ownerIP, s.MQTT, 5, "pat:dev", "pat", "caf\u00e9 au lait")
	if err != nil || a.code != 0 {
		t.Fatalf("CONNECT with the registered password: %#x %v", a.code, err)
	}
	a.conn.Close()
}

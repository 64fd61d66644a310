package platform_test

import (
	"testing"
	"time"

	"github.com/mqim/mqim/internal/imtest"
)

// meStatus is the status of GET /api/v1/me with tok.
func meStatus(t *testing.T, s *imtest.Server, tok string) int {
	t.Helper()
	code, err := s.API("GET", "/api/v1/me", tok, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return code
}

// waitDropped waits until the server has dropped c.
func waitDropped(t *testing.T, what string, c *imtest.Client) {
	t.Helper()
	imtest.Eventually(t, what+" dropped", 5*time.Second, func() bool { return !c.IsConnectionOpen() })
}

// TestLogoutRevokesToken: POST /logout revokes the token it was called with
// (HTTP and MQTT refuse it, across a restart) and drops the MQTT sessions
// that authenticated with it; other tokens and their sessions are untouched.
func TestLogoutRevokesToken(t *testing.T) {
	s := imtest.Start(t, "")
	tok1 := s.User("alice")
	tok2 := s.Login("alice")
	onTok1 := s.MustConnect("alice", imtest.ClientOpts{Device: "a", Password: tok1})
	onTok2 := s.MustConnect("alice", imtest.ClientOpts{Device: "b", Password: tok2})
	onPassword := s.MustConnect("alice", imtest.ClientOpts{Device: "c"})

	s.MustAPI(200, "POST", "/api/v1/logout", tok1, nil, nil)
	waitDropped(t, "the session on the revoked token", onTok1)
	if code := meStatus(t, s, tok1); code != 401 {
		t.Fatalf("revoked token on /me: %d", code)
	}
	if _, err := s.Connect("alice", imtest.ClientOpts{Device: "a", Password: tok1, NoSub: true}); err == nil {
		t.Fatal("CONNECT with the revoked token succeeded")
	}
	if !onTok2.IsConnectionOpen() || !onPassword.IsConnectionOpen() || meStatus(t, s, tok2) != 200 {
		t.Fatal("logout touched another token or session")
	}
	s.MustAPI(401, "POST", "/api/v1/logout", tok1, nil, nil)

	s.Close()
	s = imtest.Start(t, s.Dir)
	if meStatus(t, s, tok1) != 401 || meStatus(t, s, tok2) != 200 {
		t.Fatal("revocation did not survive a restart")
	}
}

// TestPasswordChangeRevokesAll: POST /me/password needs the current
// password, refuses a weak new one, and then revokes every token of the user
// and drops their sessions on tokens and passwords (not a device's API key
// session); the answer carries a fresh token. It survives a restart.
func TestPasswordChangeRevokesAll(t *testing.T) {
	s := imtest.Start(t, "")
	tok1 := s.User("alice")
	tok2 := s.Login("alice")
	key, _ := newDevice(t, s, tok1, "sensor", "")
	onTok := s.MustConnect("alice", imtest.ClientOpts{Device: "a", Password: tok2})
	onPassword := s.MustConnect("alice", imtest.ClientOpts{Device: "b"})
	device := s.MustConnect("sensor", imtest.ClientOpts{Device: "d", Password: key, NoSub: true})

	const newPassword = "a brand new passphrase"
	change := func(old, new string) (int, string) {
		var out struct {
			Token string
			Error struct{ Code string }
		}
		code, err := s.API("POST", "/api/v1/me/password", tok1, map[string]string{"password": old, "new_password": new}, &out)
		if err != nil {
			t.Fatal(err)
		}
		if out.Token == "" {
			return code, out.Error.Code
		}
		return code, out.Token
	}
	if code, c := change("not my password", newPassword); code != 403 || c != "forbidden" {
		t.Fatalf("wrong current password: %d %s", code, c)
	}
	if code, c := change(imtest.Password, "password123"); code != 400 || c != "invalid" {
		t.Fatalf("weak new password: %d %s", code, c)
	}
	code, fresh := change(imtest.Password, newPassword)
	if code != 200 {
		t.Fatalf("change: %d %s", code, fresh)
	}
	waitDropped(t, "the session on a token", onTok)
	waitDropped(t, "the session on the old password", onPassword)
	if meStatus(t, s, tok1) != 401 || meStatus(t, s, tok2) != 401 || meStatus(t, s, fresh) != 200 {
		t.Fatal("old tokens still valid, or the fresh one is not")
	}
	if !device.IsConnectionOpen() {
		t.Fatal("a device's API key session was dropped")
	}
	s.MustAPI(401, "POST", "/api/v1/login", "", map[string]string{"user": "alice", "password": imtest.Password}, nil)
	s.MustAPI(200, "POST", "/api/v1/login", "", map[string]string{"user": "alice", "password": newPassword}, nil)

	s.Close()
	s = imtest.Start(t, s.Dir)
	if meStatus(t, s, tok2) != 401 || meStatus(t, s, fresh) != 200 {
		t.Fatal("revocation did not survive a restart")
	}
}

// TestSignOutEverywhere: POST /me/revoke revokes every token of the user
// (the one used too) and drops their token and password sessions; POST
// /devices/{id}/revoke revokes every key of a device and drops its sessions.
func TestSignOutEverywhere(t *testing.T) {
	s := imtest.Start(t, "")
	tok1 := s.User("alice")
	tok2 := s.Login("alice")
	k1, _ := newDevice(t, s, tok1, "sensor", "")
	var k2 struct{ Key string }
	s.MustAPI(201, "POST", "/api/v1/devices/sensor/keys", tok1, nil, &k2)
	d1 := s.MustConnect("sensor", imtest.ClientOpts{Device: "1", Password: k1, NoSub: true})
	d2 := s.MustConnect("sensor", imtest.ClientOpts{Device: "2", Password: k2.Key, NoSub: true})
	onTok := s.MustConnect("alice", imtest.ClientOpts{Device: "a", Password: tok2})

	var out struct{ Keys []struct{ Revoked int64 } }
	s.MustAPI(200, "POST", "/api/v1/devices/sensor/revoke", tok1, nil, &out)
	if len(out.Keys) != 2 || out.Keys[0].Revoked == 0 || out.Keys[1].Revoked == 0 {
		t.Fatalf("revoked keys: %+v", out.Keys)
	}
	waitDropped(t, "device session 1", d1)
	waitDropped(t, "device session 2", d2)
	if _, err := s.Connect("sensor", imtest.ClientOpts{Device: "1", Password: k1, NoSub: true}); err == nil {
		t.Fatal("a revoked key connected")
	}
	if !onTok.IsConnectionOpen() {
		t.Fatal("revoking a device dropped its owner's session")
	}

	s.MustAPI(200, "POST", "/api/v1/me/revoke", tok1, nil, nil)
	waitDropped(t, "the token session", onTok)
	if meStatus(t, s, tok1) != 401 || meStatus(t, s, tok2) != 401 {
		t.Fatal("tokens still valid after sign out everywhere")
	}
	if tok := s.Login("alice"); meStatus(t, s, tok) != 200 {
		t.Fatal("a new login after sign out everywhere does not work")
	}
}

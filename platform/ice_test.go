package platform_test

import (
	"reflect"
	"testing"

	"github.com/mqim/mqim/config"
	"github.com/mqim/mqim/internal/imtest"
)

// GET /api/v1/connect hands clients the configured STUN/TURN servers, and
// an empty list (not null) by default.
func TestConnectAdvertisesICEServers(t *testing.T) {
	want := []config.ICEServer{
		{URLs: []string{"stun:stun.example.com:3478"}},
		{URLs: []string{"turn:turn.example.com:3478?transport=udp"}, Username: "u", Credential: "c"},
	}
	for _, c := range []struct {
		name string
		ice  []config.ICEServer
	}{{"default", nil}, {"configured", want}} {
		t.Run(c.name, func(t *testing.T) {
			srv := imtest.Start(t, "", func(cfg *config.Config) { cfg.ICEServers = c.ice })
			tok := srv.User("alice")
			var out struct {
				ICE *[]config.ICEServer `json:"ice_servers"`
			}
			srv.MustAPI(200, "GET", "/api/v1/connect", tok, nil, &out)
			if out.ICE == nil {
				t.Fatal("no ice_servers in the answer")
			}
			if len(c.ice) == 0 && len(*out.ICE) != 0 || len(c.ice) > 0 && !reflect.DeepEqual(*out.ICE, c.ice) {
				t.Fatalf("ice_servers %+v, want %+v", *out.ICE, c.ice)
			}
		})
	}
}

func TestICEServersFromEnvironment(t *testing.T) {
	t.Setenv("MQIM_ICE_SERVERS", "stun:a.example:3478, stun:b.example:3478")
	cfg, err := config.Load(nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []config.ICEServer{{URLs: []string{"stun:a.example:3478", "stun:b.example:3478"}}}
	if !reflect.DeepEqual(cfg.ICEServers, want) {
		t.Fatalf("ICEServers %+v, want %+v", cfg.ICEServers, want)
	}
}

// GET /api/v1/connect tells clients the message body limit, so a composer
// can refuse an over-long message before the server does.
func TestConnectAdvertisesBodyLimit(t *testing.T) {
	for _, c := range []struct {
		name        string
		limit, want int
	}{{"default", 0, config.Default().BodyLimit}, {"configured", 1000, 1000}} {
		t.Run(c.name, func(t *testing.T) {
			srv := imtest.Start(t, "", func(cfg *config.Config) {
				if c.limit > 0 {
					cfg.BodyLimit = c.limit
				}
			})
			want := c.want
			var out struct {
				Limits struct {
					BodyBytes int `json:"body_bytes"`
				} `json:"limits"`
			}
			srv.MustAPI(200, "GET", "/api/v1/connect", srv.User("alice"), nil, &out)
			if out.Limits.BodyBytes != want {
				t.Fatalf("limits.body_bytes %d, want %d", out.Limits.BodyBytes, want)
			}
		})
	}
}

package config

import (
	"strings"
	"testing"
	"time"
)

// TestEnvironmentCoversEverySetting: every YAML setting has an MQIM_*
// variable named by its path, read as YAML for its field.
func TestEnvironmentCoversEverySetting(t *testing.T) {
	for k, v := range map[string]string{
		"MQIM_HTTP":                "127.0.0.1:9999",
		"MQIM_BODY_LIMIT":          "2048",
		"MQIM_OPEN_REGISTRATION":   "false",
		"MQIM_TOKEN_TTL":           "2h",
		"MQIM_ADMINS":              "root, ops",
		"MQIM_ALLOWED_ORIGINS":     `["https://a.example", "https://b.example"]`,
		"MQIM_ICE_SERVERS":         "stun:stun.example:3478",
		"MQIM_LIMITS_PUBLISH_RATE": "7.5",
		"MQIM_LIMITS_KDF_WAIT":     "3s",
		"MQIM_LIMITS_TOPIC_LEVELS": "8",
		"MQIM_STORAGE_RESERVE":     "1048576",
		"MQIM_MAX_INFLIGHT":        "100",
		"MQIM_RULES":               `[{user: "*", access: read, topics: ["x/#"]}]`,
	} {
		t.Setenv(k, v)
	}
	c, err := Load(nil)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name string
		ok   bool
	}{
		{"http", c.HTTP == "127.0.0.1:9999"},
		{"body_limit", c.BodyLimit == 2048},
		{"open_registration", !c.OpenRegistration},
		{"token_ttl", c.TokenTTL == 2*time.Hour},
		{"admins", strings.Join(c.Admins, ",") == "root,ops"},
		{"allowed_origins", len(c.AllowedOrigins) == 2 && c.AllowedOrigins[1] == "https://b.example"},
		{"ice_servers", len(c.ICEServers) == 1 && c.ICEServers[0].URLs[0] == "stun:stun.example:3478"},
		{"limits.publish_rate", c.Limits.PublishRate == 7.5},
		{"limits.kdf_wait", c.Limits.KDFWait == 3*time.Second},
		{"limits.topic_levels", c.Limits.TopicLevels == 8},
		{"storage_reserve", c.StorageReserve == 1<<20},
		{"max_inflight", c.MaxInflight == 100},
		{"rules", len(c.Rules) == 1 && c.Rules[0].Topics[0] == "x/#"},
	}
	for _, ch := range checks {
		if !ch.ok {
			t.Errorf("%s not taken from the environment: %+v", ch.name, c)
		}
	}
}

func TestEnvironmentErrorsNameTheVariable(t *testing.T) {
	t.Setenv("MQIM_LIMITS_KDF_WAIT", "soon")
	if _, err := Load(nil); err == nil || !strings.Contains(err.Error(), "MQIM_LIMITS_KDF_WAIT") {
		t.Fatalf("error %v, want one naming MQIM_LIMITS_KDF_WAIT", err)
	}
}

// Package config loads the server configuration: defaults, then an optional
// YAML file, then MQIM_* environment variables, then command-line flags.
package config

import (
	"flag"
	"fmt"
	"os"
	"reflect"
	"runtime"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/mqim/mqim/acl"
)

// Config is the whole server configuration.
type Config struct {
	Data string `yaml:"data"` // data directory
	HTTP string `yaml:"http"` // HTTP API, web client and MQTT over WebSocket (/mqtt)
	MQTT string `yaml:"mqtt"` // MQTT over TCP

	// AllowedOrigins lists browser origins (scheme://host[:port]) besides the
	// server's own that may call the API and open /mqtt.
	AllowedOrigins   []string      `yaml:"allowed_origins"`
	OpenRegistration bool          `yaml:"open_registration"`
	TokenTTL         time.Duration `yaml:"token_ttl"`
	SessionExpiry    time.Duration `yaml:"session_expiry"`
	BodyLimit        int           `yaml:"body_limit"`
	// Durability: "batch" fsyncs every group commit before acknowledging;
	// "none" leaves flushing to the OS (faster, loses the last seconds on a
	// machine crash, not on a process crash).
	Durability string   `yaml:"durability"`
	Admins     []string `yaml:"admins"`
	LogLevel   string   `yaml:"log_level"`
	// AdminToken, if set (at least 32 characters), opens the operator's
	// HTTP endpoints (POST /api/v1/admin/users) to requests bearing it;
	// unset, they do not exist. Prefer MQIM_ADMIN_TOKEN to the file.
	AdminToken string `yaml:"admin_token"`
	// ICEServers are the STUN/TURN servers GET /api/v1/connect hands to
	// clients for WebRTC file transfer (default none: host candidates
	// work when peers reach each other directly).
	ICEServers []ICEServer `yaml:"ice_servers"`
	// MaxInflight bounds each session's queue in the broker of what is
	// not chat (receipts, notices, operator-namespace QoS 1 messages); chat
	// is delivered from history by cursor and has no such bound.
	MaxInflight uint16 `yaml:"max_inflight"`
	// DeliveryWindow bounds each connected device's unacknowledged chat
	// messages (MQTT 5 clients: also their Receive Maximum).
	DeliveryWindow int `yaml:"delivery_window"`
	// WritesPending bounds each connected client's outbound queue in
	// mochi (ephemeral events and non-chat messages; chat is written by the
	// delivery pump directly). Each slot is 8 bytes per connection, held
	// for the connection's life; writes rarely wait there, as the socket
	// writer never blocks (broker/conn.go).
	WritesPending int32 `yaml:"writes_pending"`
	// Limits: abuse limits (publish rate per user, connections per IP).
	Limits Limits `yaml:"limits"`
	// Cluster, when set, makes this process one node of a cluster.
	Cluster *Cluster `yaml:"cluster"`
	// NodeID names this node in the node registry (default: host:http
	// port); PublicURL is the base URL browsers reach it at (default: the
	// host they used).
	NodeID    string `yaml:"node_id"`
	PublicURL string `yaml:"public_url"`
	// Pprof, when set, serves Go's profiling endpoints on this loopback
	// address (for `mqim bench` and performance work).
	Pprof string `yaml:"pprof"`
	// StorageReserve is the free space (bytes) the data directory's
	// filesystem must keep: below it, writes are refused with storage_full
	// (MQTT 5 PUBACK 0x97, HTTP 507) before Badger can fault on a full disk.
	// Reads go on. 0 disables the check.
	StorageReserve int64 `yaml:"storage_reserve"`
	// Directory turns GET /api/v1/users?q= (finding people by id or
	// display name prefix) on or off.
	Directory bool `yaml:"directory"`
	// DMPolicy is the default of users' dm_policy: "anyone" may write to
	// them one to one, or their "contacts" only.
	DMPolicy string `yaml:"dm_policy"`
	// MemoryLimit (bytes), when set, is the Go runtime's soft memory limit
	// (debug.SetMemoryLimit, as GOMEMLIMIT): the collector runs harder as
	// the heap nears it instead of letting it grow to twice the live heap.
	// 0 leaves the runtime's setting (GOMEMLIMIT, else none).
	MemoryLimit int64 `yaml:"memory_limit"`
	// Rules are the operator's ACL rules for topics outside im/ (devices,
	// bots, bridges); reloaded on SIGHUP. See acl.Rule.
	Rules []acl.Rule `yaml:"rules"`
	// Mounts give users (by name or role) their own subtree mnt/{mount}/
	// of the operator namespace, mapped transparently (acl.Mount); rules
	// are written for the mapped topics. Reloaded on SIGHUP, for new
	// connections.
	Mounts []acl.Mount `yaml:"mounts"`
}

// Default returns the embedded defaults.
func Default() Config {
	return Config{
		Data: "./data", HTTP: "127.0.0.1:8080", MQTT: "127.0.0.1:1883",
		OpenRegistration: true, Directory: true, DMPolicy: "anyone", TokenTTL: 24 * time.Hour, SessionExpiry: 7 * 24 * time.Hour,
		BodyLimit: 16 << 10, Durability: "batch", LogLevel: "info",
		MaxInflight: 8192, DeliveryWindow: 256, WritesPending: 128, StorageReserve: 256 << 20,
		Limits: Limits{PublishRate: 50, PublishBurst: 500, ConnsPerIP: 1024, ConnectRate: 100, ConnectBurst: 1000,
			ConnectTimeout: 10 * time.Second, MaxKeepalive: 5 * time.Minute, TopicLevels: 16, TopicBytes: 512, Subscriptions: 256,
			StreamsPerUser: 16, TicketsPerUser: 32, PollIdle: 45 * time.Second,
			RetainedPerUser: 1000, RetainedBytesPerUser: 4 << 20,
			GroupsOwnedPerUser: 100, GroupsPerUser: 500, BlocksPerUser: 1000, ContactsPerUser: 5000, RequestsPerUser: 200, DirectoryRate: 2, DirectoryBurst: 20,
			SearchRate: 2, SearchBurst: 20,
			KDFSlots: runtime.GOMAXPROCS(0), KDFQueue: 4 * runtime.GOMAXPROCS(0), KDFWait: 2 * time.Second,
			PasswordCacheTTL: 10 * time.Minute, PasswordCacheSize: 10000,
			LoginIPRate: 0.2, LoginIPBurst: 20, LoginBackoffMax: 5 * time.Second, LoginAccountRate: 1, LoginAccountBurst: 30},
	}
}

// Validate checks the values.
func (c Config) Validate() error {
	switch {
	case c.Durability != "batch" && c.Durability != "none":
		return fmt.Errorf("config: durability must be batch or none, got %q", c.Durability)
	case c.DMPolicy != "anyone" && c.DMPolicy != "contacts":
		return fmt.Errorf("config: dm_policy must be anyone or contacts, got %q", c.DMPolicy)
	case c.BodyLimit < 1 || c.BodyLimit > 1<<20:
		return fmt.Errorf("config: body_limit must be 1..1048576")
	case c.AdminToken != "" && len(c.AdminToken) < MinAdminToken:
		return fmt.Errorf("config: admin_token must be at least %d characters (e.g. openssl rand -hex 32)", MinAdminToken)
	case c.TokenTTL < time.Minute:
		return fmt.Errorf("config: token_ttl must be at least 1m")
	case c.SessionExpiry < time.Minute:
		return fmt.Errorf("config: session_expiry must be at least 1m")
	case c.StorageReserve < 0:
		return fmt.Errorf("config: storage_reserve must not be negative")
	case c.MemoryLimit < 0:
		return fmt.Errorf("config: memory_limit must not be negative")
	case c.WritesPending < 16:
		return fmt.Errorf("config: writes_pending must be at least 16")
	case c.Limits.PublishRate < 0 || c.Limits.ConnectRate < 0 || c.Limits.ConnsPerIP < 0 || c.Limits.PublishBurst < 0 || c.Limits.ConnectBurst < 0,
		c.Limits.StreamsPerUser < 0 || c.Limits.TicketsPerUser < 0 || c.Limits.PollIdle < 0,
		c.Limits.RetainedPerUser < 0 || c.Limits.RetainedBytesPerUser < 0 || c.Limits.GroupsOwnedPerUser < 0 || c.Limits.GroupsPerUser < 0 || c.Limits.BlocksPerUser < 0 || c.Limits.ContactsPerUser < 0 || c.Limits.RequestsPerUser < 0 || c.Limits.DirectoryRate < 0 || c.Limits.DirectoryBurst < 0 || c.Limits.SearchRate < 0 || c.Limits.SearchBurst < 0,
		c.Limits.KDFSlots < 0 || c.Limits.KDFQueue < 0 || c.Limits.KDFWait < 0 || c.Limits.PasswordCacheTTL < 0 || c.Limits.PasswordCacheSize < 0,
		c.Limits.ConnectTimeout < 0 || c.Limits.MaxKeepalive < 0 || c.Limits.TopicLevels < 0 || c.Limits.TopicBytes < 0 || c.Limits.Subscriptions < 0,
		c.Limits.LoginIPRate < 0 || c.Limits.LoginIPBurst < 0 || c.Limits.LoginBackoffMax < 0 || c.Limits.LoginAccountRate < 0 || c.Limits.LoginAccountBurst < 0:
		return fmt.Errorf("config: limits must not be negative")
	case c.Limits.MaxKeepalive > 65535*time.Second:
		return fmt.Errorf("config: max_keepalive is at most 65535s (MQTT's two-byte keepalive)")
	}
	if c.Cluster != nil {
		return c.Cluster.Validate()
	}
	return nil
}

// MinAdminToken is the shortest admin_token accepted: it is the only
// secret between the network and creating accounts.
const MinAdminToken = 32

// Load parses args (without the program/subcommand name) into a Config.
func Load(args []string) (Config, error) {
	c := Default()
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	data := fs.String("data", "", "data directory (env MQIM_DATA, default ./data)")
	httpAddr := fs.String("http", "", "HTTP address for API, web client and /mqtt WebSocket (env MQIM_HTTP, default 127.0.0.1:8080)")
	mqttAddr := fs.String("mqtt", "", "MQTT TCP address (env MQIM_MQTT, default 127.0.0.1:1883)")
	file := fs.String("config", os.Getenv("MQIM_CONFIG"), "YAML config file (env MQIM_CONFIG)")
	pprofAddr := fs.String("pprof", os.Getenv("MQIM_PPROF"), "serve Go profiles at this loopback address (env MQIM_PPROF; off by default)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("serve takes no arguments, got %q (its flags: --data --http --mqtt --config --pprof)", fs.Args())
	}
	if *file != "" {
		b, err := os.ReadFile(*file)
		if err != nil {
			return c, fmt.Errorf("config: %w", err)
		}
		dec := yaml.NewDecoder(strings.NewReader(string(b)))
		dec.KnownFields(true)
		if err := dec.Decode(&c); err != nil {
			return c, fmt.Errorf("config: %s: %w", *file, err)
		}
	}
	if err := fromEnv(&c); err != nil {
		return c, err
	}
	for _, f := range []struct {
		v   string
		dst *string
	}{{*data, &c.Data}, {*httpAddr, &c.HTTP}, {*mqttAddr, &c.MQTT}} {
		if f.v != "" {
			*f.dst = f.v
		}
	}
	if *pprofAddr != "" {
		c.Pprof = *pprofAddr
	}
	return c, c.Validate()
}

// fromEnv applies MQIM_* environment variables, one per YAML setting, named
// by its path: MQIM_BODY_LIMIT for body_limit, MQIM_LIMITS_PUBLISH_RATE for
// limits.publish_rate. A value is read as YAML for its field (numbers,
// booleans, durations like 5s, or flow lists such as
// MQIM_RULES='[{user: "*", access: read, topics: ["x/#"]}]'); a list of
// strings may also be comma-separated, and MQIM_ICE_SERVERS may be a
// comma-separated list of URLs (one server, no credentials).
func fromEnv(c *Config) error {
	return envStruct(reflect.ValueOf(c).Elem(), "MQIM_")
}

func envStruct(v reflect.Value, prefix string) error {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if name == "" || name == "-" || !t.Field(i).IsExported() {
			continue
		}
		key := prefix + strings.ToUpper(name)
		f := v.Field(i)
		if f.Kind() == reflect.Struct && f.Type() != reflect.TypeOf(time.Duration(0)) {
			if err := envStruct(f, key+"_"); err != nil {
				return err
			}
			continue
		}
		val, ok := os.LookupEnv(key)
		if !ok {
			continue
		}
		if err := setFromEnv(f, val); err != nil {
			return fmt.Errorf("config: %s=%q: %w", key, val, err)
		}
	}
	return nil
}

func setFromEnv(f reflect.Value, val string) error {
	switch {
	case f.Kind() == reflect.String:
		f.SetString(val)
		return nil
	case f.Type() == reflect.TypeOf([]string(nil)) && !strings.HasPrefix(strings.TrimSpace(val), "["):
		f.Set(reflect.ValueOf(splitList(val)))
		return nil
	case f.Type() == reflect.TypeOf([]ICEServer(nil)) && !strings.HasPrefix(strings.TrimSpace(val), "["):
		var servers []ICEServer
		if urls := splitList(val); len(urls) > 0 {
			servers = []ICEServer{{URLs: urls}}
		}
		f.Set(reflect.ValueOf(servers))
		return nil
	}
	p := reflect.New(f.Type())
	if err := yaml.Unmarshal([]byte(val), p.Interface()); err != nil {
		return err
	}
	f.Set(p.Elem())
	return nil
}

// ICEServer is one STUN or TURN server, shaped like the browser's RTCIceServer.
type ICEServer struct {
	URLs       []string `yaml:"urls" json:"urls"`
	Username   string   `yaml:"username" json:"username,omitempty"`
	Credential string   `yaml:"credential" json:"credential,omitempty"`
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// Limits are the abuse limits; a zero rate or count disables its limit.
type Limits struct {
	// PublishRate and PublishBurst: each user's publishes per second, token
	// bucket: im/ (MQTT and HTTP together) and operator namespaces share it.
	PublishRate  float64 `yaml:"publish_rate"`
	PublishBurst int     `yaml:"publish_burst"`
	// ConnsPerIP: connections one IP may hold open, per port (MQTT TCP; the
	// HTTP port with API, SSE and MQTT over WebSocket).
	ConnsPerIP int `yaml:"conns_per_ip"`
	// ConnectRate and ConnectBurst: new connections per IP per second.
	ConnectRate  float64 `yaml:"connect_rate"`
	ConnectBurst int     `yaml:"connect_burst"`
	// ConnectTimeout: how long a new MQTT connection may take to send its
	// CONNECT before it is closed.
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	// MaxKeepalive caps the MQTT keepalive: MQTT 5 clients asking for more
	// (or for none) are given this one (CONNACK Server Keep Alive); a 3.1.1
	// client asking for none is closed after 1.5x this of silence.
	MaxKeepalive time.Duration `yaml:"max_keepalive"`
	// TopicLevels and TopicBytes bound every topic name and filter a client
	// sends (PUBLISH, SUBSCRIBE, UNSUBSCRIBE); Subscriptions bounds one
	// client's subscriptions.
	TopicLevels   int `yaml:"topic_levels"`
	TopicBytes    int `yaml:"topic_bytes"`
	Subscriptions int `yaml:"subscriptions_per_client"`

	// StreamsPerUser: SSE streams and long-poll sessions one user holds
	// open together; TicketsPerUser: its stream tickets not yet used.
	StreamsPerUser int `yaml:"streams_per_user"`
	TicketsPerUser int `yaml:"stream_tickets_per_user"`
	// PollIdle: how long a poll session outlives its last poll (0: 45 s).
	PollIdle time.Duration `yaml:"poll_idle"`
	// RetainedPerUser and RetainedBytesPerUser: retained messages (count,
	// and bytes of topic plus payload) one user holds in operator
	// namespaces (topics outside im/).
	RetainedPerUser      int   `yaml:"retained_per_user"`
	RetainedBytesPerUser int64 `yaml:"retained_bytes_per_user"`
	// GroupsOwnedPerUser: groups one user may own (create); GroupsPerUser:
	// groups one user may be a member of, however it got there.
	GroupsOwnedPerUser int `yaml:"groups_owned_per_user"`
	GroupsPerUser      int `yaml:"groups_per_user"`
	// BlocksPerUser: users one user may block.
	BlocksPerUser int `yaml:"blocks_per_user"`
	// ContactsPerUser: users one user may have as contacts.
	ContactsPerUser int `yaml:"contacts_per_user"`
	// RequestsPerUser: pending message requests one user may hold.
	RequestsPerUser int `yaml:"requests_per_user"`
	// DirectoryRate, DirectoryBurst: each user's directory searches.
	DirectoryRate  float64 `yaml:"directory_rate"`
	DirectoryBurst int     `yaml:"directory_burst"`
	// SearchRate, SearchBurst: each user's message searches (GET /search).
	SearchRate  float64 `yaml:"search_rate"`
	SearchBurst int     `yaml:"search_burst"`
	// KDFSlots: password hashes (argon2id, 32 MiB each) computed at once
	// (default: one per CPU); KDFQueue: logins that may wait for a slot
	// (default 4 per CPU), each at most KDFWait (2 s). Past them a login is
	// answered "busy" at once (HTTP 503, MQTT 5 CONNACK 0x89, 3.1.1 0x03).
	KDFSlots int           `yaml:"kdf_slots"`
	KDFQueue int           `yaml:"kdf_queue"`
	KDFWait  time.Duration `yaml:"kdf_wait"`
	// PasswordCacheTTL and PasswordCacheSize: a password that verified is
	// remembered (as a keyed digest, accounts.PasswordCache) for this long,
	// for at most this many users, so a client reconnecting with it within
	// the TTL does not run the KDF again (default 10 min, 10000 users; 0
	// disables). Wrong passwords always run it.
	PasswordCacheTTL  time.Duration `yaml:"password_cache_ttl"`
	PasswordCacheSize int           `yaml:"password_cache_size"`
	// LoginIPRate and LoginIPBurst: password attempts (login, CONNECT with
	// a password, registration) per client IP that do not end in a
	// successful login, per second (default 0.2/s, burst 20).
	LoginIPRate  float64 `yaml:"login_ip_rate"`
	LoginIPBurst int     `yaml:"login_ip_burst"`
	// LoginBackoffMax caps the delay after consecutive failures on one
	// account from one IP (125 ms, doubling; default 5 s).
	LoginBackoffMax time.Duration `yaml:"login_backoff_max"`
	// LoginAccountRate and LoginAccountBurst: failures per account from
	// IPs that already failed on it, all together (default 1/s, burst 30);
	// an IP without failures on the account is never held by it.
	LoginAccountRate  float64 `yaml:"login_account_rate"`
	LoginAccountBurst int     `yaml:"login_account_burst"`
}

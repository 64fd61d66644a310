package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

const deviceUsage = `usage:
  mqim device create  --http URL --user OWNER --password PW NAME
  mqim device list    --http URL --user OWNER --password PW
  mqim device key create --http URL --user OWNER --password PW [--client-id ID] NAME
  mqim device key list   --http URL --user OWNER --password PW NAME
  mqim device key revoke --http URL --user OWNER --password PW NAME KEYID
(--password may come from env MQIM_PASSWORD; --http from MQIM_URL, default http://127.0.0.1:8080)`

// apiClient is a minimal client of the running server's HTTP API, so device
// management works while the server holds the data directory.
type apiClient struct {
	base, token string
	hc          *http.Client
}

func (c *apiClient) call(method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.base, "/")+path, rd)
	if err != nil {
		return err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode >= 300 {
		var e struct {
			Error struct{ Code, Message string }
		}
		if json.Unmarshal(raw, &e) == nil && e.Error.Code != "" {
			return fmt.Errorf("%s: %s", e.Error.Code, e.Error.Message)
		}
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	if out != nil {
		return json.Unmarshal(raw, out)
	}
	return nil
}

func login(fs *flag.FlagSet, args []string, stdout io.Writer) (*apiClient, []string, error) {
	base := fs.String("http", envOr("MQIM_URL", "http://127.0.0.1:8080"), "server URL (env MQIM_URL)")
	user := fs.String("user", "", "your user id")
	pw := fs.String("password", os.Getenv("MQIM_PASSWORD"), "your password (env MQIM_PASSWORD)")
	rest, err := parseArgs(fs, deviceUsage, args, stdout)
	if err != nil {
		return nil, nil, err
	}
	if *user == "" || *pw == "" {
		return nil, nil, errors.New("--user and --password are required\n" + deviceUsage)
	}
	c := &apiClient{base: *base, hc: &http.Client{Timeout: 30 * time.Second}}
	var tok struct{ Token string }
	if err := c.call("POST", "/api/v1/login", map[string]string{"user": *user, "password": *pw}, &tok); err != nil {
		return nil, nil, fmt.Errorf("login: %w", err)
	}
	c.token = tok.Token
	return c, rest, nil
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func device(args []string, stdout io.Writer) error {
	if len(args) == 0 || isHelp(args[0]) || (args[0] == "key" && (len(args) < 2 || isHelp(args[1]))) {
		fmt.Fprintln(stdout, deviceUsage)
		return nil
	}
	sub := args[0]
	if sub == "key" {
		return deviceKey(args[1], args[2:], stdout)
	}
	if sub != "create" && sub != "list" {
		return fmt.Errorf("unknown device command %q\n%s", sub, deviceUsage)
	}
	fs := flag.NewFlagSet("device "+sub, flag.ContinueOnError)
	c, rest, err := login(fs, args[1:], stdout)
	if err != nil {
		return err
	}
	switch sub {
	case "create":
		if len(rest) != 1 {
			return errors.New(deviceUsage)
		}
		if err := c.call("POST", "/api/v1/devices", map[string]string{"id": rest[0]}, nil); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "created device", rest[0])
	case "list":
		var out struct{ Devices []string }
		if err := c.call("GET", "/api/v1/devices", nil, &out); err != nil {
			return err
		}
		for _, d := range out.Devices {
			fmt.Fprintln(stdout, d)
		}
	default:
		return errors.New(deviceUsage)
	}
	return nil
}

func deviceKey(sub string, args []string, stdout io.Writer) error {
	if sub != "create" && sub != "list" && sub != "revoke" {
		return fmt.Errorf("unknown device key command %q\n%s", sub, deviceUsage)
	}
	fs := flag.NewFlagSet("device key "+sub, flag.ContinueOnError)
	var clientID *string
	if sub == "create" {
		clientID = fs.String("client-id", "", "bind the key to this client id")
	}
	c, rest, err := login(fs, args, stdout)
	if err != nil {
		return err
	}
	switch {
	case sub == "create" && len(rest) == 1:
		var out struct{ Key, ID string }
		if err := c.call("POST", "/api/v1/devices/"+rest[0]+"/keys", map[string]string{"client_id": *clientID}, &out); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "key %s for %s (shown once; use it as the MQTT password):\n%s\n", out.ID, rest[0], out.Key)
	case sub == "list" && len(rest) == 1:
		var out struct {
			Keys []struct {
				ID       string `json:"id"`
				ClientID string `json:"client_id"`
				Created  int64  `json:"created"`
				Revoked  int64  `json:"revoked"`
			}
		}
		if err := c.call("GET", "/api/v1/devices/"+rest[0]+"/keys", nil, &out); err != nil {
			return err
		}
		for _, k := range out.Keys {
			state := "active"
			if k.Revoked != 0 {
				state = "revoked " + time.UnixMilli(k.Revoked).UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(stdout, "%s\tcreated %s\t%s\n", k.ID, time.UnixMilli(k.Created).UTC().Format(time.RFC3339), state)
		}
	case sub == "revoke" && len(rest) == 2:
		if err := c.call("DELETE", "/api/v1/devices/"+rest[0]+"/keys/"+rest[1], nil, nil); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "revoked", rest[1])
	default:
		return errors.New(deviceUsage)
	}
	return nil
}

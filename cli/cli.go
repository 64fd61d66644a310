// Package cli implements the mqim command line: serve, user, group, version.
package cli

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"golang.org/x/term"

	"github.com/mqim/mqim/bench"
	"github.com/mqim/mqim/config"
	"github.com/mqim/mqim/platform"
)

// Version is set at build time with -ldflags "-X github.com/mqim/mqim/cli.Version=...".
var Version = "0.1.0-dev"

const usage = `mqim: instant messaging over an embedded MQTT broker

usage:
  mqim serve [--data DIR] [--http ADDR] [--mqtt ADDR] [--config FILE]
  mqim user add [--data DIR] NAME          (server stopped; password prompted, or read from stdin)
  mqim user add --http URL NAME            (running server; admin token from MQIM_ADMIN_TOKEN)
  mqim group create [--data DIR] --owner USER [--name NAME] GID [MEMBER...]
  mqim device create|list|key create|key list|key revoke ...   (see mqim device)
  mqim bench [--quick] [--workload NAME,...] [--help for all flags]
  mqim send-file --http URL --user U --password P --to PEER FILE...   (WebRTC, peer to peer)
  mqim recv-files --http URL --user U --password P (--from PEER,... | --accept-anyone) --dir DIR [--count N] [--max-size 4G]
  mqim version

Every setting of the YAML config can also be set by environment, named by its path:
MQIM_DATA, MQIM_HTTP, MQIM_LIMITS_PUBLISH_RATE, ... (MQIM_CONFIG names the file).
Every command takes --help; flags may come before or after its arguments.
`

// Main runs the command line and returns the process exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = serve(args[1:], stdout, stderr)
	case "user":
		err = user(args[1:], stdin, stdout, stderr)
	case "group":
		err = group(args[1:], stdout)
	case "bench":
		err = bench.Main(args[1:], stdout, stderr)
	case "device":
		err = device(args[1:], stdout)
	case "send-file":
		return sendFile(args[1:], stdout, stderr)
	case "recv-files":
		return recvFiles(args[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "mqim", Version)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "mqim: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		if errors.Is(err, bench.ErrInterrupted) {
			fmt.Fprintln(stderr, "mqim:", err)
			return 130 // 128 + SIGINT, as a shell reports it
		}
		fmt.Fprintln(stderr, "mqim:", err)
		return 1
	}
	return 0
}

func newLogger(level string, w io.Writer) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
}

func serve(args []string, stdout, stderr io.Writer) error {
	cfg, err := config.Load(args)
	if err != nil {
		return err
	}
	log := newLogger(cfg.LogLevel, stderr)
	if cfg.MemoryLimit > 0 {
		debug.SetMemoryLimit(cfg.MemoryLimit)
	}
	p, err := platform.Start(cfg, log)
	if err != nil {
		return err
	}
	if cfg.Pprof != "" {
		addr, err := startPprof(cfg.Pprof)
		if err != nil {
			p.Close(context.Background())
			return err
		}
		fmt.Fprintf(stdout, "pprof listening on %s\n", addr)
	}
	// Tests and scripts parse these two lines to find ephemeral ports.
	fmt.Fprintf(stdout, "http listening on %s\n", p.HTTPAddr)
	fmt.Fprintf(stdout, "mqtt listening on %s\n", p.MQTTAddr)
	fmt.Fprintf(stdout, "web client: http://%s/  (MQTT over WebSocket: ws://%s/mqtt)\n", p.HTTPAddr, p.HTTPAddr)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
wait:
	for {
		select {
		case s := <-sig:
			if s == syscall.SIGHUP {
				// Reload what can change without dropping connections: the
				// operator ACL rules. A bad file keeps the rules in force.
				if cfg, err := config.Load(args); err != nil {
					log.Error("reload refused; keeping the current rules", "error", err)
				} else if err := p.Reload(cfg); err != nil {
					log.Error("reload refused; keeping the current rules", "error", err)
				} else {
					log.Info("reloaded", "rules", len(cfg.Rules))
				}
				continue
			}
			log.Info("shutting down", "signal", s.String())
			break wait
		case err := <-p.Served():
			log.Error("http server stopped", "error", err)
			break wait
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	return p.Close(ctx)
}

func storesFor(fs *flag.FlagSet, usage string, args []string, stdout io.Writer) (*platform.Stores, []string, error) {
	data := fs.String("data", "", "data directory (env MQIM_DATA, default ./data)")
	rest, err := parseArgs(fs, usage, args, stdout)
	if err != nil {
		return nil, nil, err
	}
	st, err := openStores(*data)
	return st, rest, err
}

// openStores opens the data directory data (default: env MQIM_DATA, then
// ./data), which the server must not hold.
func openStores(data string) (*platform.Stores, error) {
	cfg := config.Default()
	if v := os.Getenv("MQIM_DATA"); v != "" {
		cfg.Data = v
	}
	if data != "" {
		cfg.Data = data
	}
	st, err := platform.OpenStores(cfg, newLogger("warn", os.Stderr))
	if err != nil {
		return nil, fmt.Errorf("%w (is the server running on this data directory? stop it first, or add users online: mqim user add --http URL)", err)
	}
	return st, nil
}

const userUsage = `usage:
  mqim user add [--data DIR] NAME
      writes the data directory; the server must be stopped
  mqim user add --http URL [--admin-token TOKEN] NAME
      asks the running server (POST /api/v1/admin/users); the token is the
      server's admin_token (env MQIM_ADMIN_TOKEN)
The password is prompted for without echo on a terminal, else read from the first line of stdin.`

func user(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if run, err := subcommand("user", "add", userUsage, args, stdout); !run {
		return err
	}
	fs := flag.NewFlagSet("user add", flag.ContinueOnError)
	data := fs.String("data", "", "data directory (env MQIM_DATA, default ./data); the server must be stopped")
	base := fs.String("http", "", "add the user through this running server instead (e.g. http://127.0.0.1:8080)")
	token := fs.String("admin-token", os.Getenv("MQIM_ADMIN_TOKEN"), "the server's admin_token, with --http (env MQIM_ADMIN_TOKEN)")
	rest, err := parseArgs(fs, userUsage, args[1:], stdout)
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		return errors.New(userUsage)
	}
	if *base != "" && *data != "" {
		return errors.New("--data and --http exclude each other\n" + userUsage)
	}
	if *base != "" && *token == "" {
		return errors.New("--http needs the server's admin token (--admin-token or MQIM_ADMIN_TOKEN)")
	}
	pw, err := readPassword(stdin, stderr)
	if err != nil {
		return err
	}
	if *base != "" {
		c := &apiClient{base: *base, token: *token, hc: &http.Client{Timeout: 30 * time.Second}}
		if err := c.call("POST", "/api/v1/admin/users", map[string]string{"user": rest[0], "password": pw}, nil); err != nil {
			return err
		}
	} else {
		st, err := openStores(*data)
		if err != nil {
			return err
		}
		defer st.DB.Close()
		if err := st.Accounts.Create(rest[0], pw); err != nil {
			return err
		}
	}
	fmt.Fprintln(stdout, "created user", rest[0])
	return nil
}

// readPassword prompts for a password on a terminal without echo, twice,
// or reads the first line of stdin when it is not a terminal (a pipe, a
// file, a test).
func readPassword(stdin io.Reader, prompt io.Writer) (string, error) {
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		read := func(p string) (string, error) {
			fmt.Fprint(prompt, p)
			b, err := term.ReadPassword(int(f.Fd()))
			fmt.Fprintln(prompt)
			return string(b), err
		}
		pw, err := read("Password: ")
		if err != nil {
			return "", err
		}
		again, err := read("Repeat password: ")
		if err != nil {
			return "", err
		}
		if pw != again {
			return "", errors.New("the passwords differ")
		}
		return pw, nil
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	return strings.TrimRight(line, "\r\n"), nil
}

const groupUsage = "usage: mqim group create [--data DIR] --owner USER [--name NAME] GID [MEMBER...]"

func group(args []string, stdout io.Writer) error {
	if run, err := subcommand("group", "create", groupUsage, args, stdout); !run {
		return err
	}
	fs := flag.NewFlagSet("group create", flag.ContinueOnError)
	owner := fs.String("owner", "", "owner (a member)")
	name := fs.String("name", "", "display name (default: the id)")
	st, rest, err := storesFor(fs, groupUsage, args[1:], stdout)
	if err != nil {
		return err
	}
	defer st.DB.Close()
	if len(rest) < 1 || *owner == "" {
		return errors.New(groupUsage)
	}
	for _, u := range append([]string{*owner}, rest[1:]...) {
		if ok, err := st.Accounts.Exists(u); err != nil {
			return err
		} else if !ok {
			return fmt.Errorf("no such user %q", u)
		}
	}
	if *name == "" {
		*name = rest[0]
	}
	g, err := st.Groups.Create(rest[0], *name, *owner, rest[1:], time.Now().UnixMilli())
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "created group %s with members %s\n", g.ID, strings.Join(g.Members, ","))
	return nil
}

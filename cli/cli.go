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
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/mqim/mqim/bench"
	"github.com/mqim/mqim/config"
	"github.com/mqim/mqim/platform"
)

// Version is set at build time with -ldflags "-X github.com/mqim/mqim/cli.Version=...".
var Version = "0.1.0-dev"

const usage = `mqim: instant messaging over an embedded MQTT broker

usage:
  mqim serve [--data DIR] [--http ADDR] [--mqtt ADDR] [--config FILE]
  mqim user add [--data DIR] NAME          (password read from stdin)
  mqim group create [--data DIR] --owner USER [--name NAME] GID [MEMBER...]
  mqim device create|list|key create|key list|key revoke ...   (see mqim device)
  mqim bench [--quick] [--workload NAME,...] [--help for all flags]
  mqim send-file --http URL --user U --password P --to PEER FILE...   (WebRTC, peer to peer)
  mqim recv-files --http URL --user U --password P (--from PEER,... | --accept-anyone) --dir DIR [--count N] [--max-size 4G]
  mqim version

Every setting of the YAML config can also be set by environment, named by its path:
MQIM_DATA, MQIM_HTTP, MQIM_LIMITS_PUBLISH_RATE, ... (MQIM_CONFIG names the file).
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
		err = user(args[1:], stdin, stdout)
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

func storesFor(fs *flag.FlagSet, args []string) (*platform.Stores, []string, error) {
	data := fs.String("data", "", "data directory (env MQIM_DATA, default ./data)")
	if err := fs.Parse(args); err != nil {
		return nil, nil, err
	}
	cfg := config.Default()
	if v := os.Getenv("MQIM_DATA"); v != "" {
		cfg.Data = v
	}
	if *data != "" {
		cfg.Data = *data
	}
	st, err := platform.OpenStores(cfg, newLogger("warn", os.Stderr))
	if err != nil {
		return nil, nil, fmt.Errorf("%w (is the server running on this data directory? stop it first)", err)
	}
	return st, fs.Args(), nil
}

func user(args []string, stdin io.Reader, stdout io.Writer) error {
	if len(args) == 0 || args[0] != "add" {
		return errors.New("usage: mqim user add [--data DIR] NAME (password on stdin)")
	}
	st, rest, err := storesFor(flag.NewFlagSet("user add", flag.ContinueOnError), args[1:])
	if err != nil {
		return err
	}
	defer st.DB.Close()
	if len(rest) != 1 {
		return errors.New("usage: mqim user add [--data DIR] NAME (password on stdin)")
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	if err := st.Accounts.Create(rest[0], strings.TrimRight(line, "\r\n")); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "created user", rest[0])
	return nil
}

func group(args []string, stdout io.Writer) error {
	if len(args) == 0 || args[0] != "create" {
		return errors.New("usage: mqim group create [--data DIR] --owner USER [--name NAME] GID [MEMBER...]")
	}
	fs := flag.NewFlagSet("group create", flag.ContinueOnError)
	owner := fs.String("owner", "", "owner (a member)")
	name := fs.String("name", "", "display name (default: the id)")
	st, rest, err := storesFor(fs, args[1:])
	if err != nil {
		return err
	}
	defer st.DB.Close()
	if len(rest) < 1 || *owner == "" {
		return errors.New("usage: mqim group create [--data DIR] --owner USER [--name NAME] GID [MEMBER...]")
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

package cli

import (
	"errors"
	"flag"
	"io"
	"reflect"
	"testing"
)

func TestParseArgs(t *testing.T) {
	cases := []struct {
		name    string
		args    []string
		pos     []string
		user    string
		wantErr error
	}{
		{"flags first", []string{"--user", "alice", "boiler"}, []string{"boiler"}, "alice", nil},
		{"flags after positionals", []string{"boiler", "--user", "alice", "key1"}, []string{"boiler", "key1"}, "alice", nil},
		{"flag=value after positionals", []string{"boiler", "--user=alice"}, []string{"boiler"}, "alice", nil},
		{"after -- everything is positional", []string{"--user", "alice", "--", "--user", "x"}, []string{"--user", "x"}, "alice", nil},
		{"help anywhere", []string{"boiler", "--help"}, nil, "", flag.ErrHelp},
		{"unknown flag after positionals", []string{"boiler", "--usr", "alice"}, nil, "", errors.New("flag provided but not defined")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fs := flag.NewFlagSet("x", flag.ContinueOnError)
			user := fs.String("user", "", "")
			pos, err := parseArgs(fs, "usage: x", c.args, io.Discard)
			switch {
			case c.wantErr == flag.ErrHelp && !errors.Is(err, flag.ErrHelp):
				t.Fatalf("err %v, want ErrHelp", err)
			case c.wantErr != nil && err == nil:
				t.Fatalf("no error, want %v", c.wantErr)
			case c.wantErr == nil && err != nil:
				t.Fatal(err)
			case c.wantErr == nil && (!reflect.DeepEqual(pos, c.pos) || *user != c.user):
				t.Fatalf("positionals %q user %q, want %q %q", pos, *user, c.pos, c.user)
			}
		})
	}
}

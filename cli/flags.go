package cli

import (
	"flag"
	"fmt"
	"io"
)

// parseArgs parses fs's flags wherever they stand among args and returns
// the positional arguments in order: Go's flag package stops at the first
// positional argument, so `mqim device create boiler --user alice` would
// silently ignore --user. Everything after "--" is positional.
//
// -h, -help or --help (before any "--") prints usage and fs's flags to
// stdout and returns flag.ErrHelp, which Main turns into exit 0. A bad flag
// is an error carrying usage; fs prints nothing itself.
func parseArgs(fs *flag.FlagSet, usage string, args []string, stdout io.Writer) ([]string, error) {
	for _, a := range args {
		if a == "--" {
			break
		}
		if a == "-h" || a == "-help" || a == "--help" {
			printHelp(fs, usage, stdout)
			return nil, flag.ErrHelp
		}
	}
	fs.SetOutput(io.Discard)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, fmt.Errorf("%w\n%s", err, usage)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// printHelp writes usage and, if fs has any, its flags.
func printHelp(fs *flag.FlagSet, usage string, w io.Writer) {
	fmt.Fprintln(w, usage)
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if n > 0 {
		fmt.Fprintln(w, "\nflags:")
		fs.SetOutput(w)
		fs.PrintDefaults()
	}
}

// isHelp reports whether a is a request for help in place of a subcommand.
func isHelp(a string) bool { return a == "-h" || a == "-help" || a == "--help" || a == "help" }

// subcommand checks that args name cmd's one subcommand sub: with no
// arguments or a request for help it prints usage (run false, no error),
// with another name it is an error.
func subcommand(cmd, sub, usage string, args []string, stdout io.Writer) (run bool, err error) {
	switch {
	case len(args) == 0 || isHelp(args[0]):
		fmt.Fprintln(stdout, usage)
		return false, nil
	case args[0] != sub:
		return false, fmt.Errorf("unknown %s command %q\n%s", cmd, args[0], usage)
	}
	return true, nil
}

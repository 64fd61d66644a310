// Command mqim is an instant-messaging platform built on an embedded MQTT
// broker. See README.md.
package main

import (
	"os"

	"github.com/mqim/mqim/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// Package webclient embeds the browser client built into dist/ by scripts/build.
//
// The sources live in src/; dist/ is generated and ignored by git except for a
// placeholder, so `go build .` works before the web assets have been built (the
// server then answers / with a page that says how to build them).
package webclient

import (
	"embed"
	"io/fs"
)

//go:embed all:dist
var dist embed.FS

// FS returns the built web client, rooted at dist/.
func FS() fs.FS {
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		panic(err) // dist is embedded at compile time; Sub cannot fail on it
	}
	return sub
}

// Built reports whether dist/ holds a built client (index.html present).
func Built() bool {
	_, err := fs.Stat(FS(), "index.html")
	return err == nil
}

// Package forgetest holds what the tests of several packages share about forges: the
// deliveries captured from a real Gitea and GitHub's own published example payloads (one
// testdata folder, read by the parsers' tests and the intake's), and a recording fake of a
// forge client. It is for tests only.
package forgetest

import (
	"embed"
	"io/fs"
)

//go:embed testdata
var testdata embed.FS

// Gitea holds deliveries captured from the real Gitea, one JSON file each
// ({"event", "delivery", "body"}); forge/gitea's TestParseLiveDeliveries -update rewrites
// them (GiteaDir).
var Gitea = sub("testdata/gitea")

// GitHub holds GitHub's example payloads, one JSON body each; its README.md says where
// each comes from.
var GitHub = sub("testdata/github")

// GiteaDir is the folder of the Gitea captures, relative to a package folder beside
// forgetest's (forge/gitea), for rewriting them.
const GiteaDir = "../forgetest/testdata/gitea"

func sub(dir string) fs.FS {
	f, err := fs.Sub(testdata, dir)
	if err != nil {
		panic(err)
	}
	return f
}

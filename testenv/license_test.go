package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// tools/license.sh guards the pins: `make tools` (and so `make test` and `make demo`) fails
// when a pinned server's module is not under an open-source licence.
func TestLicenseCheck(t *testing.T) {
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(root, "tools", "license.sh")
	cases := []struct {
		name, text, want string // want "" means refused
	}{
		{"MPL-2.0 (Nomad 1.6, Consul 1.15)", "Copyright (c) 2015 HashiCorp, Inc.\n\nMozilla Public License, version 2.0\n\n1. Definitions\n", "MPL-2.0"},
		{"MIT (Gitea)", "Copyright (c) 2016 The Gitea Authors\n\nPermission is hereby granted, free of charge, to any person obtaining a copy\n", "MIT"},
		{"Apache-2.0", "                                 Apache License\n                           Version 2.0, January 2004\n", "Apache-2.0"},
		// The head of the BUSL as HashiCorp ships it from Nomad 1.7.0 on: it names the MPL as
		// its future Change License, which must not make it pass.
		{"BUSL-1.1 (Nomad >= 1.7)", "License text copyright (c) 2020 MariaDB Corporation Ab, All Rights Reserved.\n\"Business Source License\" is a trademark of MariaDB Corporation Ab.\n\nParameters\n\nLicensor: HashiCorp, Inc.\nLicensed Work: Nomad Version 1.7.0 or later.\nChange License: Mozilla Public License, version 2.0\n", ""},
		{"SSPL", "Server Side Public License\nVERSION 1, OCTOBER 16, 2018\n", ""},
		{"unknown", "All rights reserved.\n", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "LICENSE")
			if err := os.WriteFile(f, []byte(c.text), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(script, f).Output()
			got := strings.TrimSpace(string(out))
			if c.want == "" {
				if err == nil {
					t.Fatalf("license.sh accepted it as %q", got)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("license.sh = %q, %v; want %s", got, err, c.want)
			}
		})
	}
}

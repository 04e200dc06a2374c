package testenv

import (
	"fmt"
	"os"
	"os/exec"
)

// Chromium finds the browser for the tests that drive pages: $ALBATROS_CHROMIUM, else
// chromium or chromium-browser on the PATH (Debian's package chromium). Outside CI a missing
// browser skips those tests with the reason; under CI=true it fails them.
func Chromium() (string, error) {
	if p := os.Getenv("ALBATROS_CHROMIUM"); p != "" {
		return p, nil
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("no chromium on the PATH (apt-get install chromium, or set ALBATROS_CHROMIUM)")
}

package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// buildBot builds the static bot as make image does, into dir.
func buildBot(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "albatros-bot")
	cmd := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-o", bin, "./cmd/albatros-bot")
	cmd.Dir = "../.."
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// untar unpacks an image's tar (an OCI image layout) into a directory.
func untar(t *testing.T, image []byte) string {
	t.Helper()
	dir := t.TempDir()
	tr := tar.NewReader(bytes.NewReader(image))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return dir
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, filepath.FromSlash(h.Name))
		if h.Typeflag == tar.TypeDir {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// Two builds of the bot and of its image give the same bytes; the image is a valid OCI
// layout whose one image runs the bot as a non-root user, with CA certificates and OCI
// labels and no setting in its environment but the address; the binary taken from its
// layer runs.
func TestImageIsReproducibleAndRuns(t *testing.T) {
	certs := "/etc/ssl/certs/ca-certificates.crt"
	if _, err := os.Stat(certs); err != nil {
		t.Fatalf("the build machine's CA certificates: %v", err)
	}
	epoch := time.Unix(1764633600, 0).UTC()
	var images [2][]byte
	for i := range images {
		var buf bytes.Buffer
		o := Options{Binary: buildBot(t, t.TempDir()), CACerts: certs, Epoch: epoch, Version: "1.0.0", Source: "https://example.com/albatros", Commit: "abc123"}
		if _, err := Write(&buf, o); err != nil {
			t.Fatal(err)
		}
		images[i] = buf.Bytes()
	}
	if !bytes.Equal(images[0], images[1]) {
		t.Fatal("two builds of the image differ")
	}

	dir := untar(t, images[0])
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil || len(im.Manifests) != 1 || im.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != "1.0.0" {
		t.Fatalf("index %+v, %v", im, err)
	}
	img, err := idx.Image(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(img); err != nil {
		t.Fatalf("not a valid image: %v", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cf.Config
	if c.User != "65532:65532" || !slices.Equal(c.Entrypoint, []string{"/usr/local/bin/albatros-bot"}) || cf.OS != "linux" || cf.Architecture != runtime.GOARCH || !cf.Created.Time.Equal(epoch) {
		t.Errorf("config: user %q, entrypoint %v, os %s, created %v", c.User, c.Entrypoint, cf.OS, cf.Created)
	}
	for k, v := range map[string]string{"org.opencontainers.image.source": "https://example.com/albatros", "org.opencontainers.image.revision": "abc123", "org.opencontainers.image.version": "1.0.0", "org.opencontainers.image.title": "albatros-bot"} {
		if c.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, c.Labels[k], v)
		}
	}
	for _, e := range c.Env {
		if strings.HasPrefix(e, "ALBATROS_") && e != "ALBATROS_ADDR=0.0.0.0:8080" || strings.HasPrefix(e, "NOMAD_") || strings.HasPrefix(e, "CONSUL_") || strings.HasPrefix(e, "AWS_") {
			t.Errorf("a setting in the image's environment: %s", e)
		}
	}

	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers %d, %v", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	var names []string
	bot := filepath.Join(t.TempDir(), "albatros-bot")
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		if h.Name == "var/lib/albatros/" && (h.Uid != 65532 || h.Mode != 0o700) {
			t.Errorf("the state directory: owner %d, mode %o; want the bot's user's, 700", h.Uid, h.Mode)
		}
		if h.Name == "usr/local/bin/albatros-bot" {
			body, _ := io.ReadAll(tr)
			if err := os.WriteFile(bot, body, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if h.Typeflag == tar.TypeReg && h.Name != "usr/local/bin/albatros-bot" && h.Mode&0o111 != 0 {
			t.Errorf("%s is executable", h.Name)
		}
	}
	want := []string{"etc/", "etc/group", "etc/passwd", "etc/ssl/", "etc/ssl/certs/", "etc/ssl/certs/ca-certificates.crt", "tmp/", "usr/", "usr/local/", "usr/local/bin/", "usr/local/bin/albatros-bot", "var/", "var/lib/", "var/lib/albatros/"}
	if !slices.Equal(names, want) {
		t.Errorf("the layer holds %v, want %v", names, want)
	}
	out, err := exec.Command(bot, "-h").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "ALBATROS_URL") {
		t.Errorf("the bot from the layer, -h: %v\n%s", err, out)
	}
}

// A binary that needs a dynamic loader has no place in an image without libc.
func TestImageRefusesADynamicBinary(t *testing.T) {
	dynamic, err := exec.LookPath("sh")
	if err != nil {
		t.Fatal(err)
	}
	_, err = Image(Options{Binary: dynamic, CACerts: "/etc/ssl/certs/ca-certificates.crt"})
	if err == nil || !strings.Contains(err.Error(), "not a static binary") {
		t.Errorf("image of %s: %v, want it refused", dynamic, err)
	}
}

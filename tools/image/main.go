// Command image builds the bot's container image without a container engine: an OCI image
// layout, as one tar file (docker load, podman load), of one layer holding the static bot,
// CA certificates, a non-root user and the directories it writes. The same inputs give the
// same bytes, hence the same digest: every time in it is the given epoch (the commit's, by
// default), every file's owner and mode fixed, the entries in order.
//
//	CGO_ENABLED=0 go build -trimpath -buildvcs=false -o bin/albatros-bot-static ./cmd/albatros-bot
//	go run ./tools/image -bin bin/albatros-bot-static -o bin/albatros-image.tar
//
// (make image does both.)
package main

import (
	"archive/tar"
	"bytes"
	"cmp"
	"debug/elf"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"strconv"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The user the bot runs as in the image: no login, no home but its state directory.
const (
	uid      = 65532
	user     = "albatros"
	stateDir = "/var/lib/albatros" // ALBATROS_ARCHIVE's default directory
	binPath  = "/usr/local/bin/albatros-bot"
)

// Options are what an image is built of.
type Options struct {
	Binary  string    // the static bot
	CACerts string    // a PEM bundle of CA certificates
	Epoch   time.Time // every time in the image
	Version string    // the image's version label and tag
	Source  string    // the repository's URL, for the labels
	Commit  string    // the commit the bot is built from, for the labels
}

func main() {
	var o Options
	var out, epoch string
	flag.StringVar(&o.Binary, "bin", "bin/albatros-bot-static", "the static bot (CGO_ENABLED=0)")
	flag.StringVar(&o.CACerts, "ca", "/etc/ssl/certs/ca-certificates.crt", "the CA certificates to put in the image")
	flag.StringVar(&out, "o", "bin/albatros-image.tar", "the image's tar file (an OCI image layout)")
	flag.StringVar(&epoch, "epoch", os.Getenv("SOURCE_DATE_EPOCH"), "seconds since 1970 that every time in the image is (SOURCE_DATE_EPOCH; 0 when empty)")
	flag.StringVar(&o.Version, "version", "dev", "the image's version (its tag and label)")
	flag.StringVar(&o.Source, "source", "https://github.com/albatros-ci/albatros", "the source's URL, for the labels")
	flag.StringVar(&o.Commit, "commit", "", "the commit built, for the labels")
	flag.Parse()
	secs, err := strconv.ParseInt(cmp.Or(epoch, "0"), 10, 64)
	if err != nil {
		fail(fmt.Errorf("-epoch %q: %w", epoch, err))
	}
	o.Epoch = time.Unix(secs, 0).UTC()
	f, err := os.Create(out)
	if err != nil {
		fail(err)
	}
	digest, err := Write(f, o)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(out)
		fail(err)
	}
	fmt.Printf("%s: albatros:%s %s\n", out, o.Version, digest)
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "image: %v\n", err)
	os.Exit(1)
}

// Image builds the image.
func Image(o Options) (v1.Image, error) {
	bot, err := os.ReadFile(o.Binary)
	if err != nil {
		return nil, err
	}
	arch, err := staticArch(bot)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", o.Binary, err)
	}
	certs, err := os.ReadFile(o.CACerts)
	if err != nil {
		return nil, fmt.Errorf("CA certificates: %w", err)
	}
	layerTar, err := rootfs(o.Epoch, bot, certs)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	created := v1.Time{Time: o.Epoch}
	img, err = mutate.Append(img, mutate.Addendum{Layer: layer, History: v1.History{Created: created, CreatedBy: "albatros tools/image", Comment: "the static bot, CA certificates, its user"}})
	if err != nil {
		return nil, err
	}
	labels := map[string]string{
		"org.opencontainers.image.title":       "albatros-bot",
		"org.opencontainers.image.description": "Albatros, a CI on Nomad: the bot",
		"org.opencontainers.image.source":      o.Source,
		"org.opencontainers.image.version":     o.Version,
		"org.opencontainers.image.created":     o.Epoch.Format(time.RFC3339),
	}
	if o.Commit != "" {
		labels["org.opencontainers.image.revision"] = o.Commit
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS = arch, "linux"
	cf.Created = created
	cf.Config = v1.Config{
		User:       strconv.Itoa(uid) + ":" + strconv.Itoa(uid),
		Entrypoint: []string{binPath},
		WorkingDir: stateDir,
		Env: []string{
			"PATH=/usr/local/bin:/usr/bin:/bin",
			"SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
			"ALBATROS_ADDR=0.0.0.0:8080",
		},
		ExposedPorts: map[string]struct{}{"8080/tcp": {}},
		Labels:       labels,
		Volumes:      map[string]struct{}{stateDir: {}},
	}
	return mutate.ConfigFile(img, cf)
}

// rootfs is the image's one layer: its files in order, each owned and dated alike.
func rootfs(epoch time.Time, bot, certs []byte) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dir := func(name string, mode int64, owner int) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, Uid: owner, Gid: owner, ModTime: epoch, Format: tar.FormatPAX})
	}
	file := func(name string, mode int64, body []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(body)), ModTime: epoch, Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := tw.Write(body)
		return err
	}
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\n%s:x:%d:%d:Albatros:%s:/sbin/nologin\n", user, uid, uid, stateDir)
	group := fmt.Sprintf("root:x:0:\n%s:x:%d:\n", user, uid)
	steps := []func() error{
		func() error { return dir("etc", 0o755, 0) },
		func() error { return file("etc/group", 0o644, []byte(group)) },
		func() error { return file("etc/passwd", 0o644, []byte(passwd)) },
		func() error { return dir("etc/ssl", 0o755, 0) },
		func() error { return dir("etc/ssl/certs", 0o755, 0) },
		func() error { return file("etc/ssl/certs/ca-certificates.crt", 0o644, certs) },
		func() error { return dir("tmp", 0o1777, 0) },
		func() error { return dir("usr", 0o755, 0) },
		func() error { return dir("usr/local", 0o755, 0) },
		func() error { return dir("usr/local/bin", 0o755, 0) },
		func() error { return file(path.Join("usr/local/bin", path.Base(binPath)), 0o755, bot) },
		func() error { return dir("var", 0o755, 0) },
		func() error { return dir("var/lib", 0o755, 0) },
		func() error { return dir(stateDir[1:], 0o700, uid) },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// staticArch is the OCI architecture of a static ELF binary (the binary's, not the
// builder's); an error for a binary that asks for an interpreter (a dynamic loader, hence a
// libc the image does not hold).
func staticArch(bin []byte) (string, error) {
	f, err := elf.NewFile(bytes.NewReader(bin))
	if err != nil {
		return "", err
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return "", errors.New("not a static binary (build it with CGO_ENABLED=0)")
		}
	}
	switch f.Machine {
	case elf.EM_X86_64:
		return "amd64", nil
	case elf.EM_AARCH64:
		return "arm64", nil
	case elf.EM_RISCV:
		return "riscv64", nil
	case elf.EM_PPC64:
		return "ppc64le", nil
	case elf.EM_S390:
		return "s390x", nil
	}
	return "", fmt.Errorf("an ELF binary for %s, which the image does not name", f.Machine)
}

// Write writes the image, as an OCI image layout in one tar, to w, and returns its
// manifest's digest.
func Write(w io.Writer, o Options) (v1.Hash, error) {
	img, err := Image(o)
	if err != nil {
		return v1.Hash{}, err
	}
	manifest, err := img.RawManifest()
	if err != nil {
		return v1.Hash{}, err
	}
	digest, err := img.Digest()
	if err != nil {
		return v1.Hash{}, err
	}
	config, err := img.RawConfigFile()
	if err != nil {
		return v1.Hash{}, err
	}
	configName, err := img.ConfigName()
	if err != nil {
		return v1.Hash{}, err
	}
	layers, err := img.Layers()
	if err != nil {
		return v1.Hash{}, err
	}
	index, err := json.Marshal(v1.IndexManifest{
		SchemaVersion: 2,
		MediaType:     types.OCIImageIndex,
		Manifests: []v1.Descriptor{{
			MediaType: types.OCIManifestSchema1, Size: int64(len(manifest)), Digest: digest,
			Annotations: map[string]string{
				"org.opencontainers.image.ref.name": o.Version,
				"io.containerd.image.name":          "albatros:" + o.Version,
			},
		}},
	})
	if err != nil {
		return v1.Hash{}, err
	}
	tw := tar.NewWriter(w)
	put := func(name string, body []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(body)), ModTime: o.Epoch, Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := tw.Write(body)
		return err
	}
	blob := func(h v1.Hash) string { return "blobs/" + h.Algorithm + "/" + h.Hex }
	if err := put("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return v1.Hash{}, err
	}
	for _, d := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: o.Epoch, Format: tar.FormatPAX}); err != nil {
			return v1.Hash{}, err
		}
	}
	if err := put("index.json", index); err != nil {
		return v1.Hash{}, err
	}
	if err := put(blob(digest), manifest); err != nil {
		return v1.Hash{}, err
	}
	if err := put(blob(configName), config); err != nil {
		return v1.Hash{}, err
	}
	for _, l := range layers {
		h, err := l.Digest()
		if err != nil {
			return v1.Hash{}, err
		}
		rc, err := l.Compressed()
		if err != nil {
			return v1.Hash{}, err
		}
		body, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return v1.Hash{}, err
		}
		if err := put(blob(h), body); err != nil {
			return v1.Hash{}, err
		}
	}
	return digest, tw.Close()
}

package archive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// Store is where an archive keeps its objects: a directory on local disk (file://) or a
// bucket of an S3-compatible object store (s3://). Keys are slash-separated paths of plain
// characters (keyRE); each object is written whole, once, and then only read or deleted.
type Store interface {
	// Put writes the object key with the size bytes of body, replacing any; a reader of
	// the key sees the old object or the new one whole, never a part.
	Put(ctx context.Context, key string, body io.Reader, size int64) error
	// Get opens the object key; ErrNotFound when there is none.
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	// List returns the names directly under prefix (which ends with a slash) that sort
	// after after, in byte order, at most limit of them; a name that is itself a prefix
	// of deeper keys ends with a slash. A prefix with nothing under it lists nothing.
	List(ctx context.Context, prefix, after string, limit int) ([]string, error)
	// Delete removes the object key; removing one that is not there is not an error.
	Delete(ctx context.Context, key string) error
	// String names the store for messages, without credentials.
	String() string
}

// ErrNotFound is returned for a build, a log or an object the archive does not hold.
var ErrNotFound = errors.New("not in the archive")

// keyRE is what a key of the archive may be: the archive makes every key itself, from
// hex digests, dates, states and flavors.
var keyRE = regexp.MustCompile(`^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*/?$`)

func checkKey(key string) error {
	if !keyRE.MatchString(key) || strings.Contains(key, "..") {
		return fmt.Errorf("archive key %q: not a key the archive makes", key)
	}
	return nil
}

// CheckURL reports whether raw names a store OpenStore can open, without opening it.
func CheckURL(raw string) error {
	_, _, err := parseURL(raw)
	return err
}

func parseURL(raw string) (*url.URL, string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, "", fmt.Errorf("archive %q: %w", raw, err)
	}
	switch u.Scheme {
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return nil, "", fmt.Errorf("archive %q: a file URL names a local directory: file:///path", raw)
		}
		if u.Path == "" || !filepath.IsAbs(u.Path) || u.RawQuery != "" {
			return nil, "", fmt.Errorf("archive %q: a file URL needs an absolute path: file:///var/lib/albatros", raw)
		}
		return u, filepath.Clean(u.Path), nil
	case "s3":
		prefix := strings.Trim(u.Path, "/")
		if u.Host == "" || u.RawQuery != "" {
			return nil, "", fmt.Errorf("archive %q: an S3 URL names its bucket: s3://bucket/prefix (the endpoint and region come from AWS_ENDPOINT_URL and AWS_REGION)", raw)
		}
		if prefix != "" {
			if err := checkKey(prefix); err != nil {
				return nil, "", fmt.Errorf("archive %q: its prefix: %w", raw, err)
			}
		}
		return u, prefix, nil
	}
	return nil, "", fmt.Errorf("archive %q: the archive is a file:// directory or an s3:// bucket", raw)
}

// OpenStore opens the store a URL names: file:///var/lib/albatros (a directory, made if
// missing), or s3://bucket/prefix, its endpoint, region and credentials from the standard
// AWS_* variables and files (see NewS3).
func OpenStore(raw string) (Store, error) {
	u, path, err := parseURL(raw)
	if err != nil {
		return nil, err
	}
	if u.Scheme == "file" {
		return NewDir(path)
	}
	return NewS3(u.Host, path, os.Getenv)
}

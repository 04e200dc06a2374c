package archive

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// S3 is a Store in a bucket of an S3-compatible object store (AWS S3, Garage, SeaweedFS,
// Ceph's RGW, MinIO, versitygw), under a prefix: what replicas of the bot share.
type S3 struct {
	c              *minio.Client
	bucket, prefix string
	endpoint       string
}

// NewS3 returns the store in bucket under prefix. Its endpoint, region and credentials
// come from the standard variables of AWS's tools, read through getenv:
// AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL (default: AWS's own, for the region),
// AWS_REGION or AWS_DEFAULT_REGION, and the credentials from AWS_ACCESS_KEY_ID and
// AWS_SECRET_ACCESS_KEY (with AWS_SESSION_TOKEN), else the shared credentials file
// (AWS_SHARED_CREDENTIALS_FILE, ~/.aws/credentials, profile AWS_PROFILE), else the
// instance's role (EC2's metadata service). The bucket must exist.
func NewS3(bucket, prefix string, getenv func(string) string) (*S3, error) {
	region := firstOf(getenv("AWS_REGION"), getenv("AWS_DEFAULT_REGION"))
	endpoint := firstOf(getenv("AWS_ENDPOINT_URL_S3"), getenv("AWS_ENDPOINT_URL"))
	host, secure := "s3.amazonaws.com", true
	if region != "" && endpoint == "" {
		host = "s3." + region + ".amazonaws.com"
	}
	if endpoint != "" {
		u, err := url.Parse(endpoint)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") || (u.Path != "" && u.Path != "/") {
			return nil, fmt.Errorf("archive s3: AWS_ENDPOINT_URL %q: an http(s)://host[:port] URL", endpoint)
		}
		host, secure = u.Host, u.Scheme == "https"
	}
	if prefix != "" {
		if err := checkKey(prefix); err != nil {
			return nil, fmt.Errorf("archive s3: prefix: %w", err)
		}
		prefix += "/"
	}
	var creds *credentials.Credentials
	if id := getenv("AWS_ACCESS_KEY_ID"); id != "" {
		creds = credentials.NewStaticV4(id, getenv("AWS_SECRET_ACCESS_KEY"), getenv("AWS_SESSION_TOKEN"))
	} else {
		creds = credentials.NewChainCredentials([]credentials.Provider{
			&credentials.FileAWSCredentials{Filename: getenv("AWS_SHARED_CREDENTIALS_FILE"), Profile: getenv("AWS_PROFILE")},
			&credentials.IAM{Client: &http.Client{Transport: http.DefaultTransport}},
		})
	}
	c, err := minio.New(host, &minio.Options{Creds: creds, Secure: secure, Region: region})
	if err != nil {
		return nil, fmt.Errorf("archive s3: %w", err)
	}
	return &S3{c: c, bucket: bucket, prefix: prefix, endpoint: host}, nil
}

func firstOf(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// Check reports whether the bucket can be reached and exists.
func (s *S3) Check(ctx context.Context) error {
	ok, err := s.c.BucketExists(ctx, s.bucket)
	if err != nil {
		return fmt.Errorf("archive %s: %w", s, err)
	}
	if !ok {
		return fmt.Errorf("archive %s: no such bucket", s)
	}
	return nil
}

// Put implements Store.
func (s *S3) Put(ctx context.Context, key string, body io.Reader, size int64) error {
	if err := checkKey(key); err != nil {
		return err
	}
	opts := minio.PutObjectOptions{ContentType: "application/octet-stream", PartSize: 16 << 20}
	if _, err := s.c.PutObject(ctx, s.bucket, s.prefix+key, body, size, opts); err != nil {
		return fmt.Errorf("archive put %s: %w", key, err)
	}
	return nil
}

// Get implements Store.
func (s *S3) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	obj, err := s.c.GetObject(ctx, s.bucket, s.prefix+key, minio.GetObjectOptions{})
	if err == nil {
		// GetObject asks nothing yet: the first read (or Stat) does.
		_, err = obj.Stat()
	}
	if err != nil {
		if obj != nil {
			_ = obj.Close()
		}
		if minio.ToErrorResponse(err).Code == minio.NoSuchKey || minio.ToErrorResponse(err).StatusCode == http.StatusNotFound {
			return nil, fmt.Errorf("%s: %w", key, ErrNotFound)
		}
		return nil, fmt.Errorf("archive get %s: %w", key, err)
	}
	return obj, nil
}

// List implements Store.
func (s *S3) List(ctx context.Context, prefix, after string, limit int) ([]string, error) {
	if !strings.HasSuffix(prefix, "/") {
		return nil, fmt.Errorf("archive list %q: a prefix ends with a slash", prefix)
	}
	if err := checkKey(prefix); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the listing's pages once limit names are in
	full := s.prefix + prefix
	opts := minio.ListObjectsOptions{Prefix: full, Recursive: false, MaxKeys: min(limit, 1000)}
	if after != "" {
		opts.StartAfter = full + after
	}
	var names []string
	for obj := range s.c.ListObjects(ctx, s.bucket, opts) {
		if obj.Err != nil {
			return nil, fmt.Errorf("archive list %s: %w", prefix, obj.Err)
		}
		name := strings.TrimPrefix(obj.Key, full)
		if name == "" || name <= after {
			continue
		}
		names = append(names, name)
		if len(names) >= limit {
			break
		}
	}
	return names, nil
}

// Delete implements Store.
func (s *S3) Delete(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	err := s.c.RemoveObject(ctx, s.bucket, s.prefix+key, minio.RemoveObjectOptions{})
	if err != nil && minio.ToErrorResponse(err).Code != minio.NoSuchKey {
		return fmt.Errorf("archive delete %s: %w", key, err)
	}
	return nil
}

func (s *S3) String() string {
	return "s3://" + s.bucket + "/" + strings.TrimSuffix(s.prefix, "/") + " at " + s.endpoint
}

package testenv

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// S3 is a running S3-compatible server (versitygw on a POSIX directory), for the archive's
// tests; its one bucket is made at start.
type S3 struct {
	// Addr is host:port; Endpoint the URL AWS_ENDPOINT_URL takes.
	Addr, Endpoint string
	// Access and Secret are its only credentials (random); Bucket its bucket.
	Access, Secret, Bucket string
	// Dir holds the served directory (data/) and the server's log (s3.log).
	Dir  string
	bin  string
	proc *process
}

// StartS3 starts versitygw from bin on a free loopback port, with a bucket named bucket,
// and waits until it answers.
func StartS3(ctx context.Context, bin, bucket string) (*S3, error) {
	dir, err := tempDir("s3")
	if err != nil {
		return nil, err
	}
	ports, err := freePorts(1)
	if err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "data")
	// versitygw serves each directory of its root as a bucket.
	if err := os.MkdirAll(filepath.Join(data, bucket), 0o755); err != nil {
		return nil, err
	}
	s := &S3{
		Addr: fmt.Sprintf("127.0.0.1:%d", ports[0]), Access: "test" + rand.Text()[:8], Secret: rand.Text(),
		Bucket: bucket, Dir: dir, bin: bin,
	}
	s.Endpoint = "http://" + s.Addr
	if err := s.StartServer(ctx); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// StartServer starts the server again after StopServer, on the same port and data.
func (s *S3) StartServer(ctx context.Context) error {
	args := []string{"--access", s.Access, "--secret", s.Secret, "--port", s.Addr, "posix", filepath.Join(s.Dir, "data")}
	p, err := startProcess("versitygw", s.bin, args, s.Dir, []string{"PATH=" + os.Getenv("PATH"), "HOME=" + s.Dir}, filepath.Join(s.Dir, "s3.log"))
	if err != nil {
		return err
	}
	s.proc = p
	return waitFor(ctx, p, 30*time.Second, func(ctx context.Context) error {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", s.Addr)
		if err == nil {
			c.Close()
		}
		return err
	})
}

// StopServer stops the server and keeps its data: the store is unreachable until
// StartServer.
func (s *S3) StopServer() {
	if s.proc != nil {
		s.proc.stop(5 * time.Second)
	}
}

// Stop stops the server and removes its data.
func (s *S3) Stop() {
	s.StopServer()
	_ = os.RemoveAll(s.Dir)
}

// Env returns the AWS_* variables that point an S3 client at this server.
func (s *S3) Env() []string {
	return []string{"AWS_ENDPOINT_URL=" + s.Endpoint, "AWS_ACCESS_KEY_ID=" + s.Access, "AWS_SECRET_ACCESS_KEY=" + s.Secret, "AWS_REGION=us-east-1"}
}

// Getenv looks a variable of Env up, as os.Getenv would in a process given Env.
func (s *S3) Getenv(name string) string {
	for _, kv := range s.Env() {
		if k, v, _ := strings.Cut(kv, "="); k == name {
			return v
		}
	}
	return ""
}

// URL is the archive URL of the bucket under prefix.
func (s *S3) URL(prefix string) string { return "s3://" + s.Bucket + "/" + prefix }

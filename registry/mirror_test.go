package registry_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/albatros-ci/albatros/registry"
)

// following returns a registry like setup's that follows its entries, once it has read them.
func following(t *testing.T) (*registry.Registry, func() []error) {
	t.Helper()
	r, _, _ := setup(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	errs := make(chan error, 100)
	r.Follow(ctx, func(err error) {
		select {
		case errs <- err:
		default:
		}
	})
	if err := r.Synced(testContext(t)); err != nil {
		t.Fatal(err)
	}
	return r, func() []error {
		var out []error
		for {
			select {
			case err := <-errs:
				out = append(out, err)
			default:
				return out
			}
		}
	}
}

// eventually retries check until it returns nil, for up to 5 s.
func eventually(t *testing.T, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still %v after 5 s", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Entries written by someone else (the operator's `consul kv put`, another bot) reach a
// following registry without a restart; so do their changes and deletions.
func TestFollowSeesOthersWrites(t *testing.T) {
	r, errs := following(t)
	_, kv, prefix := setup(t) // the same prefix: setup names it after the test
	ctx := testContext(t)
	const url = "https://git.example.com/quentin/app.git"
	if _, err := r.Repo(ctx, url); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("Repo before the entry exists: %v, want ErrNotFound", err)
	}
	putRaw(t, kv, prefix+base64CLI(t, url), originalEntry)
	eventually(t, "the operator's entry", func() error {
		_, err := r.Repo(ctx, url)
		return err
	})
	putRaw(t, kv, prefix+base64CLI(t, url), `{"hook":{"token":"changed"}}`)
	eventually(t, "the changed entry", func() error {
		repo, err := r.Repo(ctx, url)
		if err == nil && repo.Hook.Token != "changed" {
			err = errors.New("token " + repo.Hook.Token)
		}
		return err
	})
	if urls, err := r.RepoURLs(ctx); err != nil || len(urls) != 1 || urls[0] != url {
		t.Errorf("RepoURLs = %v, %v; want [%s]", urls, err, url)
	}
	if _, err := kv.Delete(prefix+base64CLI(t, url), nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the deleted entry", func() error {
		if _, err := r.Repo(ctx, url); !errors.Is(err, registry.ErrNotFound) {
			return errors.New("still there")
		}
		return nil
	})
	if err := r.Ready(ctx); err != nil {
		t.Errorf("Ready: %v", err)
	}
	if e := errs(); len(e) > 0 {
		t.Errorf("follower errors with Consul up: %v", e)
	}
}

// A following registry reads its own writes at once: an installation written and read
// back, then written again from what was read (its check-and-set index), then deleted.
func TestFollowReadsItsOwnWrites(t *testing.T) {
	r, _ := following(t)
	ctx := testContext(t)
	for round := range 5 {
		inst := newInstallation(t, r)
		if err := r.PutInstallation(ctx, inst); err != nil {
			t.Fatalf("round %d: create: %v", round, err)
		}
		got, err := r.Installation(ctx, orgURL)
		if err != nil {
			t.Fatalf("round %d: read back at once: %v", round, err)
		}
		got.InstalledBy = "bob"
		if err := r.PutInstallation(ctx, got); err != nil {
			t.Fatalf("round %d: write again from what was read: %v", round, err)
		}
		again, err := r.Installation(ctx, orgURL)
		if err != nil || again.InstalledBy != "bob" {
			t.Fatalf("round %d: read back the second write: %+v, %v", round, again, err)
		}
		if err := r.DeleteInstallation(ctx, again); err != nil {
			t.Fatalf("round %d: delete: %v", round, err)
		}
		if _, err := r.Installation(ctx, orgURL); !errors.Is(err, registry.ErrNotFound) {
			t.Fatalf("round %d: read after delete: %v, want ErrNotFound", round, err)
		}
	}
	const url = "https://git.example.com/quentin/lib.git"
	if err := r.PutRepo(ctx, url, &registry.Repo{}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Repo(ctx, url); err != nil {
		t.Errorf("a repository entry read back at once: %v", err)
	}
}

// The bots' own keys, written at every build, live beside the prefix: they do not wake
// the follower, whose index stays where the entries left it.
func TestBotsKeysDoNotWakeTheFollower(t *testing.T) {
	r, _ := following(t)
	ctx := testContext(t)
	if err := r.PutRepo(ctx, "https://git.example.com/quentin/app.git", &registry.Repo{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // the follower answers the write
	before := r.MirrorIndex()
	for i := range 20 {
		key := "build-key-" + string(rune('a'+i))
		if _, claimed, err := r.Claim(ctx, key); err != nil || !claimed {
			t.Fatalf("claim: %v %v", claimed, err)
		}
		if err := r.Settle(ctx, key, "ci", "job"); err != nil {
			t.Fatal(err)
		}
		if err := r.SetState(ctx, "events-index", "42"); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(200 * time.Millisecond)
	if after := r.MirrorIndex(); after != before {
		t.Errorf("the follower's index moved from %d to %d with only the bots' keys written", before, after)
	}
}

// A bot that has never read its entries answers that the registry is unavailable, not
// that a repository is unknown; Synced says so too.
func TestFollowBeforeFirstRead(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	t.Setenv("CONSUL_HTTP_ADDR", addr)
	r, err := registry.New("albatros/", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	failures := make(chan error, 10)
	r.Follow(ctx, func(err error) {
		select {
		case failures <- err:
		default:
		}
	})
	if _, err := r.Repo(ctx, "https://git.example.com/org/app.git"); !errors.Is(err, registry.ErrUnavailable) {
		t.Errorf("Repo before the first read: %v, want ErrUnavailable", err)
	}
	if err := r.Ready(ctx); !errors.Is(err, registry.ErrUnavailable) {
		t.Errorf("Ready before the first read: %v, want ErrUnavailable", err)
	}
	short, cancelShort := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancelShort()
	if err := r.Synced(short); !errors.Is(err, registry.ErrUnavailable) {
		t.Errorf("Synced: %v, want ErrUnavailable", err)
	}
	select {
	case err := <-failures:
		if !errors.Is(err, registry.ErrUnavailable) {
			t.Errorf("follower error %v does not wrap ErrUnavailable", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("the follower reported no error with Consul unreachable")
	}
}

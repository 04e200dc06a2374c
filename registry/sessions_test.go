package registry_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/albatros-ci/albatros/registry"
)

// A session signed out is revoked for every registry on the same Consul, under the run
// prefix; another session is not.
func TestRevokeSession(t *testing.T) {
	r, kv, prefix := setup(t)
	ctx := testContext(t)
	other, err := registry.New(prefix, nil) // another replica of the bot
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(other.Close)
	until := time.Now().Add(time.Hour).Truncate(time.Second)
	if err := r.Revoke(ctx, "sess-A_1", until); err != nil {
		t.Fatal(err)
	}
	for name, reg := range map[string]*registry.Registry{"the replica that signed out": r, "another replica": other} {
		if revoked, err := reg.Revoked(ctx, "sess-A_1"); err != nil || !revoked {
			t.Errorf("%s: Revoked = %v, %v; want true", name, revoked, err)
		}
		if revoked, err := reg.Revoked(ctx, "sess-B"); err != nil || revoked {
			t.Errorf("%s: a session never signed out: Revoked = %v, %v; want false", name, revoked, err)
		}
	}
	pair, _, err := kv.Get(registry.RunPrefix(prefix)+"signed-out/sess-A_1", nil)
	if err != nil || pair == nil {
		t.Fatalf("no record under the run prefix: %v %v", pair, err)
	}
	var rec struct {
		Until time.Time `json:"until"`
	}
	if err := json.Unmarshal(pair.Value, &rec); err != nil || !rec.Until.Equal(until) {
		t.Errorf("record %s, want until %s", pair.Value, until)
	}
	if pairs, _, _ := kv.List(prefix, nil); len(pairs) != 0 {
		t.Errorf("keys under the entries' prefix, which the follower watches: %d", len(pairs))
	}
}

// An ID that is not one the pages make (a key path, empty) is refused, not looked up.
func TestRevokeRefusesOtherKeys(t *testing.T) {
	r, _, _ := setup(t)
	ctx := testContext(t)
	for _, id := range []string{"", "../dedup/k", "a/b", "a b", strings.Repeat("a", 65)} {
		if err := r.Revoke(ctx, id, time.Now().Add(time.Hour)); err == nil {
			t.Errorf("Revoke(%q) = nil, want an error", id)
		}
		if _, err := r.Revoked(ctx, id); err == nil {
			t.Errorf("Revoked(%q) = nil error, want one", id)
		}
	}
}

// CleanSessions deletes the records of sessions that expired since, and only those.
func TestCleanSessions(t *testing.T) {
	r, kv, prefix := setup(t)
	ctx := testContext(t)
	if err := r.Revoke(ctx, "gone", time.Now().Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := r.Revoke(ctx, "still", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	putRaw(t, kv, registry.RunPrefix(prefix)+"signed-out/garbled", "not json")
	if n, err := r.CleanSessions(ctx); err != nil || n != 1 {
		t.Fatalf("CleanSessions = %d, %v; want 1 deleted", n, err)
	}
	for id, want := range map[string]bool{"gone": false, "still": true, "garbled": true} {
		if revoked, err := r.Revoked(ctx, id); err != nil || revoked != want {
			t.Errorf("after cleaning, Revoked(%s) = %v, %v; want %v", id, revoked, err, want)
		}
	}
	if n, err := r.CleanSessions(ctx); err != nil || n != 0 {
		t.Errorf("cleaning again = %d, %v; want nothing", n, err)
	}
}

// With Consul down, whether a session was signed out is not known: an error wrapping
// ErrUnavailable, never "not signed out".
func TestRevokedConsulDown(t *testing.T) {
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
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if revoked, err := r.Revoked(ctx, "sess"); !errors.Is(err, registry.ErrUnavailable) || revoked {
		t.Errorf("Revoked with Consul down = %v, %v; want an ErrUnavailable", revoked, err)
	}
	if err := r.Revoke(ctx, "sess", time.Now().Add(time.Hour)); !errors.Is(err, registry.ErrUnavailable) {
		t.Errorf("Revoke with Consul down = %v, want ErrUnavailable", err)
	}
	if _, err := r.CleanSessions(ctx); !errors.Is(err, registry.ErrUnavailable) {
		t.Errorf("CleanSessions with Consul down = %v, want ErrUnavailable", err)
	}
}

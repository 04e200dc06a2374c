package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	consul "github.com/hashicorp/consul/api"
)

// signedOut is the record of a session of the pages signed out, under the run prefix's
// signed-out/<session ID>. It is kept until the session would have expired anyway, so that
// every replica of the bot refuses a copy of the session's cookie meanwhile; CleanSessions
// deletes it once it has served.
type signedOut struct {
	// Until is when the session expires: its cookie opens no more after it.
	Until time.Time `json:"until"`
}

func (r *Registry) signedOutKey(id string) string { return r.run + "signed-out/" + id }

// validSessionID keeps a session ID to a single key segment: 1 to 64 characters of
// base64url, as the pages make them.
func validSessionID(id string) error {
	if id == "" || len(id) > 64 || strings.Trim(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
		return fmt.Errorf("%q is not a session ID", id)
	}
	return nil
}

// Revoke records the session id as signed out until until, when it expires anyway. Doing
// it again only moves until.
func (r *Registry) Revoke(ctx context.Context, id string, until time.Time) error {
	if err := validSessionID(id); err != nil {
		return err
	}
	raw, err := json.Marshal(signedOut{Until: until.UTC()})
	if err != nil {
		return err
	}
	if _, err := r.kv.Put(&consul.KVPair{Key: r.signedOutKey(id), Value: raw}, (&consul.WriteOptions{}).WithContext(ctx)); err != nil {
		return fmt.Errorf("%w: record the sign-out of a session: %w", ErrUnavailable, err)
	}
	return nil
}

// Revoked reports whether the session id was signed out (Revoke). An error, which wraps
// ErrUnavailable when Consul did not answer, means that it is not known.
func (r *Registry) Revoked(ctx context.Context, id string) (bool, error) {
	if err := validSessionID(id); err != nil {
		return false, err
	}
	pair, _, err := r.kv.Get(r.signedOutKey(id), (&consul.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return false, fmt.Errorf("%w: read the sign-out of a session: %w", ErrUnavailable, err)
	}
	return pair != nil, nil
}

// CleanSessions deletes the records of signed-out sessions that have expired since: their
// cookies open no more anyway. A record that does not parse is left, for whoever wrote it.
// It returns how many it deleted.
func (r *Registry) CleanSessions(ctx context.Context) (int, error) {
	pairs, _, err := r.kv.List(r.run+"signed-out/", (&consul.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return 0, fmt.Errorf("%w: list signed-out sessions: %w", ErrUnavailable, err)
	}
	n := 0
	var errs []error
	now := time.Now()
	for _, p := range pairs {
		var rec signedOut
		if err := json.Unmarshal(p.Value, &rec); err != nil || rec.Until.IsZero() || now.Before(rec.Until) {
			continue
		}
		// Deleted only if unchanged since listed: a sign-out recorded again meanwhile stays.
		ok, _, err := r.kv.DeleteCAS(&consul.KVPair{Key: p.Key, ModifyIndex: p.ModifyIndex}, (&consul.WriteOptions{}).WithContext(ctx))
		if err != nil {
			errs = append(errs, fmt.Errorf("%w: delete %s: %w", ErrUnavailable, strings.TrimPrefix(p.Key, r.run), err))
			continue
		}
		if ok {
			n++
		}
	}
	return n, errors.Join(errs...)
}

package registry

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	consul "github.com/hashicorp/consul/api"
)

// Head is the last push of a branch the bot saw, under the run prefix's heads/: the
// commit, who pushed it, and whether their code was trusted. A scheduled build of the
// branch gets the secrets only when the branch's head is still this commit and the push
// was trusted: trust follows the push, as for a push's own build, and an untrusted writer
// who pushes a trusted commit onto the branch makes it untrusted there. A head has no age:
// a quiet branch keeps its trust.
type Head struct {
	Repo   string `json:"repo"`
	Branch string `json:"branch"`
	Commit string `json:"commit"`
	Pusher string `json:"pusher,omitempty"`
	// PusherID is the pusher's numeric id on the forge (0 when not known): their trust is
	// asked again at each scheduled build, so that a user no longer trusted (or removed)
	// vouches for no more of them.
	PusherID int64     `json:"pusher_id,omitempty"`
	Trusted  bool      `json:"trusted"`
	At       time.Time `json:"at"`
}

func (r *Registry) headKey(cloneURL, branch string) string {
	sum := sha256.Sum256([]byte(cloneURL + "\x00" + branch))
	return r.run + "heads/" + hex.EncodeToString(sum[:16])
}

// RecordHead records h as its branch's last push. Distrust wins: a trusted push of the
// commit the record names untrusted (a late or repeated delivery, or two bots' deliveries
// read in either order) leaves it untrusted, as the branch cannot be pushed to the commit
// it is at; the commit must move for the trust to come back.
func (r *Registry) RecordHead(ctx context.Context, h Head) error {
	key := r.headKey(h.Repo, h.Branch)
	if h.At.IsZero() {
		h.At = time.Now().UTC()
	}
	raw, err := json.Marshal(h)
	if err != nil {
		return err
	}
	for attempt := 0; attempt < 9; attempt++ {
		cur, index, err := r.head(ctx, h.Repo, h.Branch)
		if err != nil {
			return err
		}
		if index != 0 && cur.Commit == h.Commit && !cur.Trusted {
			return nil
		}
		ok, _, err := r.kv.CAS(&consul.KVPair{Key: key, Value: raw, ModifyIndex: index}, (&consul.WriteOptions{}).WithContext(ctx))
		if err != nil {
			return fmt.Errorf("%w: head of %s %s: %w", ErrUnavailable, h.Repo, h.Branch, err)
		}
		if ok {
			return nil
		}
	}
	return fmt.Errorf("%w: head of %s %s: written by others meanwhile, 9 times", ErrUnavailable, h.Repo, h.Branch)
}

// BranchHead returns the last push of branch of the repository at cloneURL that the bot
// recorded; the zero Head (Commit "") when none.
func (r *Registry) BranchHead(ctx context.Context, cloneURL, branch string) (Head, error) {
	h, _, err := r.head(ctx, cloneURL, branch)
	return h, err
}

func (r *Registry) head(ctx context.Context, cloneURL, branch string) (Head, uint64, error) {
	kv, _, err := r.kv.Get(r.headKey(cloneURL, branch), (&consul.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return Head{}, 0, fmt.Errorf("%w: head of %s %s: %w", ErrUnavailable, cloneURL, branch, err)
	}
	if kv == nil {
		return Head{}, 0, nil
	}
	var h Head
	if json.Unmarshal(kv.Value, &h) != nil || h.Repo != cloneURL || h.Branch != branch {
		// Not a record of this branch (a hash's collision, or a hand's edit): none, but
		// written over only with a check of its index.
		return Head{}, kv.ModifyIndex, nil
	}
	return h, kv.ModifyIndex, nil
}

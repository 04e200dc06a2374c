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

// Schedule is a build no push starts: the head of Branch built in Flavor at every slot of
// Cron (five fields, as Nomad's periodic jobs read them) in the time zone TZ (an IANA
// name; empty is UTC). Name tells it apart among the repository's schedules: its builds'
// keys, its status and its issue are named after it. Since is when it was set: no slot
// before it is built.
type Schedule struct {
	Name   string    `json:"name"`
	Cron   string    `json:"cron"`
	TZ     string    `json:"tz,omitempty"`
	Branch string    `json:"branch"`
	Flavor string    `json:"flavor,omitempty"`
	Since  time.Time `json:"since,omitzero"`
}

// Param is a parameter a run asked on the bot's page may set: passed to the builder as the
// dispatch meta Name, which the builder must declare optional. Type is string, choice
// (one of Choices) or boolean ("true" or "false"); Default is its value when the run does
// not set it.
type Param struct {
	Name    string   `json:"name"`
	Type    string   `json:"type"`
	Default string   `json:"default,omitempty"`
	Choices []string `json:"choices,omitempty"`
}

// ScheduleState is what the bots know of one schedule of a repository, under the run
// prefix's schedules/: the slot its leader built last, the branch found gone, and the issue
// that tells of its failures. It is written with a check-and-set (UpdateScheduleState).
type ScheduleState struct {
	Repo string `json:"repo"`
	Name string `json:"name"`
	// Slot is the last slot done with (built, skipped or refused); Job the last build,
	// dispatched for the slot JobSlot.
	Slot      time.Time `json:"slot,omitzero"`
	Namespace string    `json:"ns,omitempty"`
	Job       string    `json:"job,omitempty"`
	JobSlot   time.Time `json:"job_slot,omitzero"`
	// Gone, when set, is when the schedule's branch was found missing: nothing is built
	// until it is back. Problem is why the last slot was not built, if it was not.
	Gone    time.Time `json:"gone,omitzero"`
	Problem string    `json:"problem,omitempty"`
	// Issue is the forge's issue that tells of the schedule's failing (0: none yet);
	// Failing is true while it is open for the failures of the schedule, Reported the
	// builds it names (so that a report seen twice is told once).
	Issue    int64    `json:"issue,omitempty"`
	Failing  bool     `json:"failing,omitempty"`
	Reported []string `json:"reported,omitempty"`
	// Result is the state of the last build reported (success, failure, error).
	Result string `json:"result,omitempty"`
	// Telling is the build whose result a bot is telling the issue of, since TellingAt:
	// one at a time, so that two reports do not open two issues.
	Telling   string    `json:"telling,omitempty"`
	TellingAt time.Time `json:"telling_at,omitzero"`
}

func (r *Registry) scheduleKey(cloneURL, name string) string {
	sum := sha256.Sum256([]byte(cloneURL + "\x00" + name))
	return r.run + "schedules/" + hex.EncodeToString(sum[:16])
}

// ScheduleState reads the state of the schedule name of the repository at cloneURL; a
// schedule never run has the zero state (with its Repo and Name).
func (r *Registry) ScheduleState(ctx context.Context, cloneURL, name string) (ScheduleState, error) {
	st, _, err := r.scheduleState(ctx, cloneURL, name)
	return st, err
}

func (r *Registry) scheduleState(ctx context.Context, cloneURL, name string) (ScheduleState, uint64, error) {
	st := ScheduleState{Repo: cloneURL, Name: name}
	kv, _, err := r.kv.Get(r.scheduleKey(cloneURL, name), (&consul.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return st, 0, fmt.Errorf("%w: schedule %s of %s: %w", ErrUnavailable, name, cloneURL, err)
	}
	if kv == nil {
		return st, 0, nil
	}
	var got ScheduleState
	if json.Unmarshal(kv.Value, &got) == nil && got.Repo == cloneURL && got.Name == name {
		st = got
	}
	return st, kv.ModifyIndex, nil
}

// UpdateScheduleState applies change to the schedule's state, read afresh, and writes it
// with a check-and-set, again when another bot wrote first. change returns false to write
// nothing. It returns the state as written (or as read, when nothing was).
func (r *Registry) UpdateScheduleState(ctx context.Context, cloneURL, name string, change func(*ScheduleState) bool) (ScheduleState, error) {
	for attempt := 0; ; attempt++ {
		st, index, err := r.scheduleState(ctx, cloneURL, name)
		if err != nil {
			return st, err
		}
		if !change(&st) {
			return st, nil
		}
		st.Repo, st.Name = cloneURL, name
		raw, err := json.Marshal(st)
		if err != nil {
			return st, err
		}
		ok, _, err := r.kv.CAS(&consul.KVPair{Key: r.scheduleKey(cloneURL, name), Value: raw, ModifyIndex: index}, (&consul.WriteOptions{}).WithContext(ctx))
		if err != nil {
			return st, fmt.Errorf("%w: schedule %s of %s: %w", ErrUnavailable, name, cloneURL, err)
		}
		if ok {
			return st, nil
		}
		if attempt == 8 {
			return st, fmt.Errorf("%w: schedule %s of %s: written by others meanwhile, 9 times", ErrUnavailable, name, cloneURL)
		}
	}
}

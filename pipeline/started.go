package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"maps"

	"github.com/albatros-ci/albatros/forge"
	"github.com/albatros-ci/albatros/orchestrator"
	"github.com/albatros-ci/albatros/registry"
)

// The causes of the builds no push starts (Started.Cause).
const (
	CauseSchedule = "schedule" // a slot of one of the repository's schedules
	CauseRun      = "run"      // a run asked on the bot's page
)

// Started is a build no push starts: a schedule's slot, or a run asked on the bot's page.
type Started struct {
	// Cause is CauseSchedule or CauseRun.
	Cause string
	// Branch and Commit are what it builds (a branch's head, or a commit of it), in Flavor.
	Branch, Commit, Flavor string
	// Key is what the build is, among the repository's: a schedule's name and slot, or a
	// run's request. Two dispatches of one key make one build, whatever bot makes them.
	Key string
	// Trusted gives the build the secrets: its caller has judged the code (a schedule:
	// the commit's push was trusted; a run: a trusted user asked for it).
	Trusted bool
	// Params are meta added to the contract's (a run's parameters, checked by the caller).
	Params map[string]string
	// By is who asked for it ("" for a schedule); Schedule the schedule's name.
	By, Schedule string
}

// StartedContext is the status context of a build of flavor started by cause: a
// scheduled build's and a run's have their own (albatros/<flavor>/scheduled,
// albatros/<flavor>/run), so that they do not hide the push's status of the same commit.
func StartedContext(flavor, cause string) string {
	switch cause {
	case CauseSchedule:
		return StatusContext(flavor) + "/scheduled"
	case CauseRun:
		return StatusContext(flavor) + "/run"
	}
	return StatusContext(flavor)
}

// startedToken is the build key of a build no push starts: its repository, cause, key and
// flavor, and nothing its dispatching bot reads for itself (the head, the trust), so that
// bots that read them a moment apart still name one build.
func startedToken(cloneURL string, st Started) string {
	h := sha256.New()
	for _, part := range []string{cloneURL, st.Cause, st.Key, st.Flavor} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	return "albatros-" + hex.EncodeToString(h.Sum(nil))[:32]
}

// Start dispatches a build no push starts, with its pending status on its own context
// (StartedContext); a key already dispatched gives the build made of it (Duplicate),
// without a second status. It supersedes nothing, and nothing supersedes it.
func (p *Pipeline) Start(ctx context.Context, log *slog.Logger, entry *registry.Repo, cloneURL string, st Started) (orchestrator.Dispatched, error) {
	if st.Cause != CauseSchedule && st.Cause != CauseRun {
		return orchestrator.Dispatched{}, fmt.Errorf("start a build of %s: cause %q", cloneURL, st.Cause)
	}
	if err := forge.CheckCommit(st.Commit); err != nil {
		return orchestrator.Dispatched{}, fmt.Errorf("start a build of %s: %w", cloneURL, err)
	}
	if err := forge.CheckRefName("branch", st.Branch); err != nil {
		return orchestrator.Dispatched{}, fmt.Errorf("start a build of %s: %w", cloneURL, err)
	}
	if !ValidFlavor(st.Flavor) {
		return orchestrator.Dispatched{}, fmt.Errorf("start a build of %s: %q is not a flavor name", cloneURL, st.Flavor)
	}
	f, repo, err := p.cfg.Forge(entry, cloneURL)
	if err != nil {
		return orchestrator.Dispatched{}, fmt.Errorf("forge for %s: %w", cloneURL, err)
	}
	repo.CloneURL = cloneURL
	if entry.Installed {
		repo.OwnerID = entry.OrgID // the caller read the repository's owner from the forge
	}
	st.Params = maps.Clone(st.Params)
	ev := forge.Event{Kind: forge.KindPush, Repo: repo, Commit: st.Commit, Branch: st.Branch, Sender: st.By}
	out, err := p.build(ctx, log, ev, entry, f, repo, Options{Started: &st})
	if len(out) == 0 {
		if err == nil {
			err = fmt.Errorf("start a build of %s: nothing dispatched", cloneURL)
		}
		return orchestrator.Dispatched{}, err
	}
	return out[0], err
}

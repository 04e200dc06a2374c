package orchestrator

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	nomad "github.com/hashicorp/nomad/api"
)

// Summary is one build as a list of builds shows it, read from Nomad.
type Summary struct {
	Namespace, ID string
	// Meta is the dispatch meta: REPO_URL, COMMIT, BRANCH, FLAVOR, and TAG or PR.
	Meta map[string]string
	// State is queued, running, success, failure or error.
	State     string
	Submitted time.Time
	// Started and Finished are the executor task's, zero until they happen.
	Started, Finished time.Time
	// ModifyIndex is the job's last change in Nomad's raft index.
	ModifyIndex uint64
	// Stopped is true once the job was stopped; its state is then error, also while its
	// task is still being killed.
	Stopped bool
	// Secrets is true when the build got the repository's secrets (its ledger record).
	Secrets bool
	// Cause is what started the build (its ledger record; see DispatchRequest.Cause).
	Cause string
	// Holder is the installation's organization the build was dispatched for, when
	// HolderKnown (its ledger record; see Build.Holder).
	Holder      int64
	HolderKnown bool
}

// Took is how long the build ran, or has been running at now.
func (s Summary) Took(now time.Time) time.Duration {
	switch {
	case s.Started.IsZero():
		return 0
	case s.Finished.IsZero():
		return now.Sub(s.Started).Round(time.Second)
	}
	return s.Finished.Sub(s.Started).Round(time.Second)
}

// Recent lists the newest builds (at most limit) of the repositories whose clone URL starts
// with repoPrefix, newest first, in every namespace: the jobs the ledger names. It asks
// Nomad twice, whatever the number of builds: once for the dispatched jobs with their meta,
// once for their allocations; and the ledger for their records, in batches.
func (o *Orchestrator) Recent(ctx context.Context, repoPrefix string, limit int) ([]Summary, error) {
	filter := `ID contains "/dispatch-` + dispatchMarker + `-" and ParentID != ""`
	if repoPrefix != "" && literal(repoPrefix) {
		// Nomad still reads every job, but answers with the repository's builds only.
		filter += ` and Meta.REPO_URL contains "` + repoPrefix + `"`
	}
	q := (&nomad.QueryOptions{Namespace: "*", Filter: filter}).WithContext(ctx)
	jobs, _, err := o.c.Jobs().ListOptions(&nomad.JobListOptions{Fields: &nomad.JobListFields{Meta: true}}, q)
	if err != nil {
		return nil, fmt.Errorf("list builds: %w", err)
	}
	var ids []string
	for _, j := range jobs {
		if IsBuildID(j.ID) && strings.HasPrefix(j.Meta["REPO_URL"], repoPrefix) {
			ids = append(ids, j.ID)
		}
	}
	recs, err := o.records(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("list builds: %w", err)
	}
	var out []Summary
	for _, j := range jobs {
		if !IsBuildID(j.ID) || !strings.HasPrefix(j.Meta["REPO_URL"], repoPrefix) {
			continue
		}
		digest, _, _ := digestOf(j.ID)
		rec, ours := recs[digest]
		if !ours || !rec.matches(j.Namespace, j.ID, j.ParentID, j.Meta) {
			continue // a job dressed as a build: not the bot's
		}
		s := Summary{Namespace: j.Namespace, ID: j.ID, Meta: j.Meta, State: jobState(j), Submitted: time.Unix(0, j.SubmitTime), ModifyIndex: j.ModifyIndex, Stopped: j.Stop, Secrets: rec.Secrets, Cause: rec.Cause}
		if rec.Holder != nil {
			s.Holder, s.HolderKnown = *rec.Holder, true
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b Summary) int { return b.Submitted.Compare(a.Submitted) })
	if len(out) > limit {
		out = out[:limit]
	}
	if len(out) == 0 {
		return out, nil
	}
	aq := (&nomad.QueryOptions{Namespace: "*", Filter: allocFilter(out)}).WithContext(ctx)
	allocs, _, err := o.c.Allocations().List(aq)
	if err != nil {
		return nil, fmt.Errorf("list build allocations: %w", err)
	}
	newest := map[string]*nomad.AllocationListStub{}
	for _, a := range allocs {
		key := a.Namespace + "/" + a.JobID
		if cur := newest[key]; cur == nil || a.CreateIndex > cur.CreateIndex {
			newest[key] = a
		}
	}
	for i := range out {
		a := newest[out[i].Namespace+"/"+out[i].ID]
		if a == nil {
			continue
		}
		if ts := a.TaskStates[Task]; ts != nil {
			out[i].Started, out[i].Finished = ts.StartedAt, ts.FinishedAt
			if !ts.StartedAt.IsZero() && ts.State == "running" && !out[i].Stopped {
				out[i].State = "running"
			}
		}
		if st := stubState(a); st != "" {
			out[i].State = st
		}
	}
	return out, nil
}

// allocFilter selects the allocations of builds: by job ID when they are few, else every
// build's.
func allocFilter(builds []Summary) string {
	all := `JobID contains "/dispatch-` + dispatchMarker + `-"`
	if len(builds) > 40 {
		return all
	}
	var terms []string
	for _, b := range builds {
		if !literal(b.ID) {
			return all
		}
		terms = append(terms, `JobID == "`+b.ID+`"`)
	}
	return strings.Join(terms, " or ")
}

// literal reports whether s can stand between double quotes in a filter expression as is.
func literal(s string) bool {
	return utf8.ValidString(s) && strings.IndexFunc(s, func(r rune) bool { return r == '"' || r == '\\' || r < 0x20 }) < 0
}

// jobState is a build's state from its job alone: queued until an allocation tells more,
// error when it ended without one.
func jobState(j *nomad.JobListStub) string {
	if j.Status == "dead" || j.Stop {
		return string(Error)
	}
	if s := j.JobSummary; s != nil {
		if tg, ok := s.Summary[Group]; ok && tg.Running > 0 {
			return "running"
		}
	}
	return "queued"
}

// stubState is the result of an ended allocation, as allocOutcome reads it; "" while it runs.
func stubState(a *nomad.AllocationListStub) string {
	switch a.ClientStatus {
	case nomad.AllocClientStatusComplete, nomad.AllocClientStatusFailed:
	case nomad.AllocClientStatusLost:
		return string(Error)
	default:
		return ""
	}
	ts := a.TaskStates[Task]
	if ts == nil || ts.StartedAt.IsZero() {
		return string(Error)
	}
	if killed(ts) && (a.DesiredStatus == nomad.AllocDesiredStatusStop || a.DesiredStatus == nomad.AllocDesiredStatusEvict) {
		return string(Error)
	}
	code, oom, terminated := exitCode(ts)
	switch {
	case oom:
		return string(Failure)
	case a.ClientStatus == nomad.AllocClientStatusComplete && (!terminated || code == 0):
		return string(Success)
	case terminated && code != 0:
		return string(Failure)
	}
	return string(Error)
}

// Ref names a build in a URL: its log page's path.
func (s Summary) Ref() string { return s.Namespace + "/" + s.ID }

// PR is the pull request number of a build, 0 for none.
func (s Summary) PR() int {
	n, _ := strconv.Atoi(s.Meta["PR"])
	return n
}

// Index is Nomad's latest index of its jobs and allocations: an event index a bot kept
// that is above it belongs to another cluster (or one rebuilt from scratch).
func (o *Orchestrator) Index(ctx context.Context) (uint64, error) {
	q := (&nomad.QueryOptions{Namespace: "*", PerPage: 1}).WithContext(ctx)
	_, jm, err := o.c.Jobs().List(q)
	if err != nil {
		return 0, fmt.Errorf("nomad index: %w", err)
	}
	_, am, err := o.c.Allocations().List(q)
	if err != nil {
		return 0, fmt.Errorf("nomad index: %w", err)
	}
	_, em, err := o.c.Evaluations().List(q)
	if err != nil {
		return 0, fmt.Errorf("nomad index: %w", err)
	}
	return max(jm.LastIndex, am.LastIndex, em.LastIndex), nil
}

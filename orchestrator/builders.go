package orchestrator

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	nomad "github.com/hashicorp/nomad/api"
)

var namespaceRE = regexp.MustCompile(`^[a-zA-Z0-9-]{1,128}$`)

// ValidNamespace reports whether ns is a name Nomad accepts for a namespace.
func ValidNamespace(ns string) bool { return namespaceRE.MatchString(ns) }

// Builder names a builder job.
type Builder struct {
	Namespace string
	Job       string
}

func (b Builder) String() string { return b.Namespace + "/" + b.Job }

// ParseJob has Nomad's own parser (/v1/jobs/parse) turn HCL2 into a job, with variables in
// the syntax of a variables file, and checks the builder contract. Nothing is registered.
func (o *Orchestrator) ParseJob(ctx context.Context, src, variables string) (*nomad.Job, error) {
	job := new(nomad.Job)
	req := &nomad.JobsParseRequest{JobHCL: src, Variables: variables, Canonicalize: true}
	if _, err := o.c.Raw().Write("/v1/jobs/parse", req, job, (&nomad.WriteOptions{Namespace: o.ns}).WithContext(ctx)); err != nil {
		return nil, fmt.Errorf("nomad could not parse the job: %w", err)
	}
	if err := CheckContract(job); err != nil {
		return nil, fmt.Errorf("job %q %w", deref(job.ID), err)
	}
	return job, nil
}

// RegisterBuilder parses a builder's HCL through Nomad, checks the builder contract,
// creates the job's namespace if needed and registers the job.
func (o *Orchestrator) RegisterBuilder(ctx context.Context, src, variables string) (Builder, error) {
	job, err := o.ParseJob(ctx, src, variables)
	if err != nil {
		return Builder{}, err
	}
	b := Builder{Namespace: deref(job.Namespace), Job: deref(job.ID)}
	if b.Namespace == "" {
		b.Namespace = "default"
	}
	if err := o.EnsureNamespace(ctx, b.Namespace); err != nil {
		return b, err
	}
	if _, _, err := o.c.Jobs().Register(job, (&nomad.WriteOptions{Namespace: b.Namespace}).WithContext(ctx)); err != nil {
		return b, fmt.Errorf("register builder %s: %w", b, err)
	}
	return b, nil
}

// CheckBuilder reads a registered job and checks the builder contract, so that a user's own
// builder that cannot work is reported clearly (before it is saved as a repository's
// builder, and instead of failing at dispatch). The error wraps ErrNotFound or ErrContract.
// It asks Nomad, never the cache of the dispatch path.
func (o *Orchestrator) CheckBuilder(ctx context.Context, b Builder) error {
	_, _, err := o.readBuilder(ctx, b, 0)
	return err
}

// builder returns a registered builder job whose contract holds, from the builders' cache
// when it has it: a dispatch then costs Nomad the dispatch alone. The cache keeps each
// builder in use as Nomad last gave it, with its contract's verdict, refreshed by a
// blocking query on the job (so a change to a builder applies as soon as Nomad answers),
// and forgets it when it has not been used for builderIdle, or when the query fails.
func (o *Orchestrator) builder(ctx context.Context, b Builder) (*nomad.Job, error) {
	o.bmu.Lock()
	e, ok := o.builders[b]
	o.bmu.Unlock()
	if ok {
		e.used.Store(time.Now().UnixNano())
		return e.job, e.err
	}
	job, index, err := o.readBuilder(ctx, b, 0)
	if job == nil {
		return nil, err // not found, or Nomad failed: not kept
	}
	e = &builderEntry{job: job, err: err}
	e.used.Store(time.Now().UnixNano())
	o.bmu.Lock()
	if o.builders == nil {
		o.builders = map[Builder]*builderEntry{}
	}
	if _, raced := o.builders[b]; !raced {
		o.builders[b] = e
		go o.watchBuilder(b, e, index)
	}
	o.bmu.Unlock()
	return job, err
}

// builderEntry is a builder job in the cache, and its contract's verdict (nil, or an error
// wrapping ErrContract). Entries are replaced, never changed.
type builderEntry struct {
	job  *nomad.Job
	err  error
	used atomic.Int64 // unix nanoseconds of the last dispatch through it
}

// builderIdle is how long a builder stays in the cache without a dispatch.
const builderIdle = 10 * time.Minute

// watchBuilder keeps the cache's entry of b fresh until b is idle or the query fails.
func (o *Orchestrator) watchBuilder(b Builder, e *builderEntry, index uint64) {
	forget := func() {
		o.bmu.Lock()
		if o.builders[b] == e {
			delete(o.builders, b)
		}
		o.bmu.Unlock()
	}
	for {
		job, next, err := o.readBuilder(o.done, b, index)
		if job == nil || time.Since(time.Unix(0, e.used.Load())) > builderIdle {
			forget() // gone, unreachable, or idle: the next dispatch reads it again
			return
		}
		if next != index {
			fresh := &builderEntry{job: job, err: err}
			fresh.used.Store(e.used.Load())
			o.bmu.Lock()
			if o.builders[b] != e {
				o.bmu.Unlock()
				return
			}
			o.builders[b] = fresh
			o.bmu.Unlock()
			e, index = fresh, next
		}
	}
}

// readBuilder reads a builder job and checks its contract. With a wait index, it blocks
// until the job changes past it (or a few minutes pass). job is nil when Nomad did not
// answer with the job; otherwise err is the contract's verdict.
func (o *Orchestrator) readBuilder(ctx context.Context, b Builder, wait uint64) (job *nomad.Job, index uint64, err error) {
	q := &nomad.QueryOptions{Namespace: b.Namespace}
	if wait > 0 {
		q.WaitIndex, q.WaitTime = wait, 5*time.Minute
	}
	job, meta, err := o.c.Jobs().Info(b.Job, q.WithContext(ctx))
	if err != nil {
		if isNotFound(err) {
			return nil, 0, fmt.Errorf("builder job %s: %w", b, ErrNotFound)
		}
		return nil, 0, fmt.Errorf("builder job %s: %w", b, err)
	}
	if err := CheckContract(job); err != nil {
		return job, meta.LastIndex, fmt.Errorf("builder %s %w", b, err)
	}
	return job, meta.LastIndex, nil
}

// CheckMeta checks that builder b accepts the optional meta keys (a repository's run
// parameters): an error wrapping ErrContract names those it does not declare.
func (o *Orchestrator) CheckMeta(ctx context.Context, b Builder, keys []string) error {
	job, _, err := o.readBuilder(ctx, b, 0)
	if err != nil {
		return err
	}
	var refused []string
	for _, k := range keys {
		if !slices.Contains(job.ParameterizedJob.MetaOptional, k) {
			refused = append(refused, k)
		}
	}
	if len(refused) > 0 {
		return fmt.Errorf("builder %s %w: it does not declare %s in its meta_optional", b, ErrContract, strings.Join(refused, ", "))
	}
	return nil
}

// CheckContract returns an error wrapping ErrContract that says, briefly enough for a
// commit status, what a job lacks to be a builder: a parameterized batch job accepting
// REPO_URL, COMMIT, BRANCH and FLAVOR, requiring no other meta, with group "runner" and
// task "executor".
func CheckContract(job *nomad.Job) error {
	var problems []string
	if t := deref(job.Type); t != "batch" {
		problems = append(problems, fmt.Sprintf("type %q, not batch", t))
	}
	if p := job.ParameterizedJob; p == nil {
		problems = append(problems, "not parameterized")
	} else {
		accepted := append(slices.Clone(p.MetaRequired), p.MetaOptional...)
		var missing, extra []string
		for _, k := range RequiredMeta {
			if !slices.Contains(accepted, k) {
				missing = append(missing, k)
			}
		}
		for _, k := range p.MetaRequired {
			if !slices.Contains(RequiredMeta, k) {
				extra = append(extra, k)
			}
		}
		if len(missing) > 0 {
			problems = append(problems, "meta "+strings.Join(missing, ", ")+" not accepted")
		}
		if len(extra) > 0 {
			problems = append(problems, "requires meta "+strings.Join(extra, ", "))
		}
	}
	if !hasTask(job, Group, Task) {
		problems = append(problems, fmt.Sprintf("no task %q in group %q", Task, Group))
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrContract, strings.Join(problems, "; "))
	}
	return nil
}

func hasTask(job *nomad.Job, group, task string) bool {
	for _, g := range job.TaskGroups {
		if deref(g.Name) != group {
			continue
		}
		for _, t := range g.Tasks {
			if t.Name == task {
				return true
			}
		}
	}
	return false
}

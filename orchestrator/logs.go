package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"time"

	nomad "github.com/hashicorp/nomad/api"
)

// Log streams.
const (
	Stdout = "stdout"
	Stderr = "stderr"
)

// ErrLogGone is returned for the log of an allocation that its Nomad client has collected
// (gc_max_allocs, its disk filling) while the servers still know the allocation.
var ErrLogGone = fmt.Errorf("the log was collected by Nomad: %w", ErrNotFound)

// blockFor is how long one blocking query waits for a change before asking again.
const blockFor = 30 * time.Second

// Follow writes the executor task's log (stdout or stderr) of a build to w from its start,
// following it while the task runs, and returns once the task has ended and all of its
// output is written, with the build's outcome. A build that ended without its task starting
// writes nothing and returns its outcome (why it did not start).
func (o *Orchestrator) Follow(ctx context.Context, ns, jobID, logType string, w io.Writer) (Outcome, error) {
	if logType != Stdout && logType != Stderr {
		return Outcome{}, fmt.Errorf("log type %q is neither stdout nor stderr", logType)
	}
	alloc, never, err := o.waitStarted(ctx, ns, jobID)
	if err != nil || alloc == nil {
		return never, err
	}
	written := int64(0)
	if !taskDead(alloc) {
		written, err = o.followRunning(ctx, alloc, logType, w)
		if err != nil {
			return Outcome{}, err
		}
	}
	// The task has ended, and Nomad's follow stream never ends by itself: write what
	// following had not yet delivered, from where it stopped.
	if err := o.copyLog(ctx, alloc, logType, written, w); err != nil {
		return Outcome{}, err
	}
	return o.waitOutcome(ctx, ns, alloc.ID)
}

// followRunning copies the followed log to w until the task ends; it returns the number of
// bytes written.
func (o *Orchestrator) followRunning(ctx context.Context, alloc *nomad.Allocation, logType string, w io.Writer) (int64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	dead := make(chan error, 1)
	go func() { dead <- o.waitTaskDead(ctx, alloc) }()

	body, err := o.logs(ctx, alloc, logType, true, 0)
	if err != nil {
		// The stream could not be opened; the final read after the task ends catches up.
		return 0, <-dead
	}
	type copied struct {
		n   int64
		err error
	}
	done := make(chan copied, 1)
	go func() {
		n, err := io.CopyBuffer(markedWriter{w}, body, make([]byte, 32<<10))
		done <- copied{n, err}
	}()
	var c copied
	select {
	case err = <-dead:
		// The task has ended: stop following (Nomad's follow stream never ends by itself).
		body.Close()
		c = <-done
	case c = <-done:
		body.Close()
		// The follow stream broke (or the writer failed): the final read after the task
		// ends catches up, from what was written.
		if werr := writeErr(c.err); werr != nil {
			cancel()
			<-dead
			return c.n, werr
		}
		err = <-dead
	}
	if err == nil {
		err = writeErr(c.err)
	}
	return c.n, err
}

// writeErr keeps the errors of the writer side of a copy, and drops those of the reading
// side: a log stream that broke, or was closed, is caught up by the final read.
func writeErr(err error) error {
	var we *writerError
	if errors.As(err, &we) {
		return we.err
	}
	return nil
}

// writerError marks an error of the writer a log is copied to.
type writerError struct{ err error }

func (e *writerError) Error() string { return e.err.Error() }

// markedWriter wraps the errors of w as writerError.
type markedWriter struct{ w io.Writer }

func (m markedWriter) Write(p []byte) (int, error) {
	n, err := m.w.Write(p)
	if err != nil {
		err = &writerError{err}
	}
	return n, err
}

// copyLog writes the log as it is now from offset on (an offset from the start counts
// across Nomad's rotated log files).
func (o *Orchestrator) copyLog(ctx context.Context, alloc *nomad.Allocation, logType string, offset int64, w io.Writer) error {
	body, err := o.logs(ctx, alloc, logType, false, offset)
	if isNotFound(err) {
		return fmt.Errorf("read %s log of %s: %w", logType, alloc.JobID, ErrLogGone)
	}
	if err != nil {
		return fmt.Errorf("read %s log of %s: %w", logType, alloc.JobID, err)
	}
	defer body.Close()
	if _, err := io.CopyBuffer(markedWriter{w}, body, make([]byte, 32<<10)); err != nil {
		if werr := writeErr(err); werr != nil {
			return werr
		}
		return fmt.Errorf("read %s log of %s: %w", logType, alloc.JobID, err)
	}
	return nil
}

// logs opens the task's log as plain bytes (Nomad's plain=true: the Go client only reads
// the framed format, JSON with base64 data, which costs Nomad and the bot several times
// more per byte), through the client's own address, TLS and token.
func (o *Orchestrator) logs(ctx context.Context, alloc *nomad.Allocation, logType string, follow bool, offset int64) (io.ReadCloser, error) {
	q := (&nomad.QueryOptions{Namespace: alloc.Namespace, Params: map[string]string{
		"task":   Task,
		"type":   logType,
		"origin": "start",
		"offset": strconv.FormatInt(offset, 10),
		"follow": strconv.FormatBool(follow),
		"plain":  "true",
	}}).WithContext(ctx)
	return o.c.Raw().Response("/v1/client/fs/logs/"+url.PathEscape(alloc.ID), q)
}

// waitStarted waits until the build has an allocation whose executor task has started or
// ended. When the build ends without one, it returns the reason as an outcome instead.
func (o *Orchestrator) waitStarted(ctx context.Context, ns, jobID string) (*nomad.Allocation, Outcome, error) {
	var index uint64
	wait := blockFor
	for {
		q := (&nomad.QueryOptions{Namespace: ns, WaitIndex: index, WaitTime: wait}).WithContext(ctx)
		stubs, meta, err := o.c.Jobs().Allocations(jobID, true, q)
		if err != nil {
			return nil, Outcome{}, fmt.Errorf("allocations of %s: %w", jobID, err)
		}
		index = meta.LastIndex
		if newest := newestAlloc(stubs); newest != nil {
			ts := newest.TaskStates[Task]
			if (ts != nil && (!ts.StartedAt.IsZero() || ts.State == "dead")) || isTerminal(newest.ClientStatus) {
				a, _, err := o.c.Allocations().Info(newest.ID, (&nomad.QueryOptions{Namespace: ns}).WithContext(ctx))
				if err != nil {
					return nil, Outcome{}, fmt.Errorf("allocation %s: %w", newest.ID, err)
				}
				if ts := a.TaskStates[Task]; ts == nil || ts.StartedAt.IsZero() {
					out, err := o.waitOutcome(ctx, ns, a.ID)
					return nil, out, err
				}
				return a, Outcome{}, nil
			}
			continue
		}
		// No allocation yet: a build that is dead without one was never placed. That shows
		// in the job, not in its allocations, so ask again soon.
		wait = 2 * time.Second
		b, err := o.Build(ctx, ns, jobID)
		if err != nil {
			return nil, Outcome{}, err
		}
		if b.Status == "dead" {
			return nil, o.unplacedOutcome(ctx, ns, jobID), nil
		}
	}
}

// unplacedOutcome explains a build that ended without an allocation, from its evaluations.
func (o *Orchestrator) unplacedOutcome(ctx context.Context, ns, jobID string) Outcome {
	evals, _, err := o.c.Jobs().Evaluations(jobID, (&nomad.QueryOptions{Namespace: ns}).WithContext(ctx))
	if err == nil {
		for _, ev := range evals {
			if out, ok := evalOutcome(ev); ok && out.Final {
				return out
			}
		}
	}
	return Outcome{Namespace: ns, JobID: jobID, Result: Error, Final: true, Description: "the build was stopped before it was placed"}
}

// waitTaskDead blocks until the executor task of alloc has ended.
func (o *Orchestrator) waitTaskDead(ctx context.Context, alloc *nomad.Allocation) error {
	index := alloc.ModifyIndex
	for {
		q := (&nomad.QueryOptions{Namespace: alloc.Namespace, WaitIndex: index, WaitTime: blockFor}).WithContext(ctx)
		a, meta, err := o.c.Allocations().Info(alloc.ID, q)
		if err != nil {
			return fmt.Errorf("allocation %s: %w", alloc.ID, err)
		}
		if taskDead(a) {
			return nil
		}
		index = meta.LastIndex
	}
}

// waitOutcome blocks until the allocation has ended and returns the build's outcome.
func (o *Orchestrator) waitOutcome(ctx context.Context, ns, allocID string) (Outcome, error) {
	var index uint64
	for {
		q := (&nomad.QueryOptions{Namespace: ns, WaitIndex: index, WaitTime: blockFor}).WithContext(ctx)
		a, meta, err := o.c.Allocations().Info(allocID, q)
		if err != nil {
			return Outcome{}, fmt.Errorf("allocation %s: %w", allocID, err)
		}
		if out, ok := allocOutcome(a); ok {
			return out, nil
		}
		index = meta.LastIndex
	}
}

func taskDead(a *nomad.Allocation) bool {
	ts := a.TaskStates[Task]
	return (ts != nil && ts.State == "dead") || isTerminal(a.ClientStatus)
}

func isTerminal(clientStatus string) bool {
	switch clientStatus {
	case nomad.AllocClientStatusComplete, nomad.AllocClientStatusFailed, nomad.AllocClientStatusLost:
		return true
	}
	return false
}

package pipeline

import (
	"context"
	"log/slog"
	"strconv"
	"time"

	"github.com/albatros-ci/albatros/orchestrator"
)

// Stream is Nomad's event stream as Follow uses it (orchestrator.Orchestrator).
type Stream interface {
	// Index is Nomad's current index.
	Index(ctx context.Context) (uint64, error)
	// Watch hands each build outcome to handle until ctx ends (orchestrator.Watch).
	Watch(ctx context.Context, handle func(context.Context, orchestrator.Outcome), onErr func(error), opts orchestrator.WatchOptions) error
}

// State is where Follow keeps the event index it has reported up to (registry.Registry's
// state keys, in Consul): the next leader resumes there.
type State interface {
	State(ctx context.Context, key string) (string, error)
	SetState(ctx context.Context, key, value string) error
}

// EventsIndex is the state key of the last Nomad event index whose outcomes are reported.
const EventsIndex = "events-index"

// FollowOptions tune Follow; the zero value is the bot's.
type FollowOptions struct {
	// SaveEvery is how often the index reported up to is kept (2 s when 0).
	SaveEvery time.Duration
	// Reporter bounds the reporting (see ReporterOptions).
	Reporter ReporterOptions
}

// Follow reports build results while ctx lasts (while this bot leads): it catches up on
// the builds that changed since the event index the last leader kept (every build the
// first time, or when the index kept cannot be read, or is ahead of Nomad's: another
// cluster), follows the event stream from there, listing the builds again whenever the
// stream breaks, and keeps the index it has reported up to in state, every
// opts.SaveEvery and once more when it stops.
func (p *Pipeline) Follow(ctx context.Context, log *slog.Logger, stream Stream, state State, opts FollowOptions) {
	if opts.SaveEvery <= 0 {
		opts.SaveEvery = 2 * time.Second
	}
	var after uint64
	if v, err := state.State(ctx, EventsIndex); err != nil {
		log.Warn("event index not read: listing every build", "err", err)
	} else if v != "" {
		if after, err = strconv.ParseUint(v, 10, 64); err != nil {
			log.Warn("event index kept is no number: listing every build", "kept", v)
			after = 0
		}
	}
	if cur, err := stream.Index(ctx); err == nil && after > cur {
		log.Warn("the event index kept is ahead of Nomad's (another cluster?): listing every build", "kept", after, "nomad", cur)
		after = 0
	}
	log.Info("leading: following Nomad's event stream", "after", after)
	rep := NewReporter(p, log, opts.Reporter)
	recoverAfter := func(ctx context.Context, after uint64) {
		n, err := p.Recover(ctx, log, rep, after)
		if err != nil {
			log.Warn("builds not listed: the event stream alone reports them", "after", after, "err", err)
			return
		}
		log.Info("caught up on the builds that changed meanwhile", "after", after, "builds", n)
	}
	recoverAfter(ctx, after)

	saved := after
	save := func(ctx context.Context) {
		if w := rep.Watermark(); w > saved {
			if err := state.SetState(ctx, EventsIndex, strconv.FormatUint(w, 10)); err != nil {
				log.Warn("event index not kept", "err", err)
				return
			}
			saved = w
		}
	}
	rep.Handed(after)
	saving := make(chan struct{})
	go func() {
		defer close(saving)
		t := time.NewTicker(opts.SaveEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				save(ctx)
			}
		}
	}()
	if err := stream.Watch(ctx, rep.Report, func(err error) { log.Warn("event stream", "err", err) }, orchestrator.WatchOptions{
		After: after, Gap: recoverAfter, Handled: rep.Handed,
	}); err != nil && ctx.Err() == nil {
		log.Warn("event stream ended", "err", err)
	}
	<-saving
	rep.Wait()
	final, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	save(final)
}

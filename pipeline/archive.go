package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"time"

	"github.com/albatros-ci/albatros/archive"
	"github.com/albatros-ci/albatros/forge"
	"github.com/albatros-ci/albatros/logtext"
	"github.com/albatros-ci/albatros/orchestrator"
	"github.com/albatros-ci/albatros/registry"
)

// ErrArchive marks a report that failed because its build could not be archived.
var ErrArchive = errors.New("the build could not be archived")

// LogGoneLine is what an archived log holds when Nomad collected it before the bot could
// archive it (a client's gc_max_allocs, its disk filling): the build is archived without it.
const LogGoneLine = "[albatros: Nomad collected this log before it could be archived]\n"

// archiveBuild writes b, which ended with out and gets status s, to the archive, once, as
// entry's holder's (report has checked that it held the name at b's dispatch): its
// record and its logs, masked as the log pages mask them (with shown, the secrets the
// build received, when it received them). It comes before the final status, under the
// report's claim: a build whose status links to its log is archived, and one bot writes it.
func (p *Pipeline) archiveBuild(ctx context.Context, log *slog.Logger, b *orchestrator.Build, entry *registry.Repo, out orchestrator.Outcome, s forge.Status, shown []string) error {
	if p.cfg.Archive == nil || !out.Final || out.Result == orchestrator.Pending {
		return nil
	}
	rec := archive.Record{
		Namespace: b.Namespace, JobID: b.ID, Builder: b.Builder,
		Repo: b.Meta["REPO_URL"], OrgID: entry.Holder(), Commit: b.Meta["COMMIT"], Branch: b.Meta["BRANCH"], Tag: b.Meta["TAG"], Flavor: b.Meta["FLAVOR"],
		Cause: b.Cause, Sender: b.Sender, Secrets: b.Secrets,
		State: string(out.Result), Reason: s.Description,
		Queued: b.Submitted, Started: out.Started, Ended: out.Finished,
	}
	if n, err := strconv.ParseInt(b.Meta["PR"], 10, 64); err == nil && n > 0 {
		rec.PR = n
	}
	logs := func(ctx context.Context, stream string, w io.Writer) error {
		out := w
		var masked *logtext.Writer
		if len(shown) > 0 {
			// Nobody watches an archive being written: a line is held until it ends (or
			// runs past MaxLine), never relayed part-way for a viewer's sake and redrawn.
			masked = logtext.New(w, shown, logtext.Options{Delay: archiveDelay})
			out = masked
		}
		_, err := p.cfg.Builds.Follow(ctx, b.Namespace, b.ID, stream, out)
		if masked != nil {
			if cerr := masked.Close(); err == nil {
				err = cerr
			}
		}
		if errors.Is(err, orchestrator.ErrLogGone) {
			log.Warn("build archived without its log: Nomad collected it first", "job", b.ID, "stream", stream)
			_, err = io.WriteString(w, LogGoneLine)
		}
		return err
	}
	written, err := p.cfg.Archive.Write(ctx, rec, logs)
	p.cfg.Observe.Archived(written, err)
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrArchive, b.ID, err)
	}
	if written {
		log.Info("build archived", "job", b.ID, "namespace", b.Namespace, "result", out.Result)
	}
	return nil
}

// archiveDelay is how long an archived log's unended line is held: as long as the build's
// log is read.
const archiveDelay = 24 * time.Hour

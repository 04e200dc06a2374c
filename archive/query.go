package archive

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/albatros-ci/albatros/orchestrator"
)

// Query selects archived builds, newest first: of one repository (Repo, its clone URL) or
// of one owner's repositories (Owner, the URL up to the repository's name, see OwnerURL),
// narrowed to a branch's pushes or a pull request's builds, a state and a flavor.
type Query struct {
	Repo, Owner string
	// OrgID is the organization that holds the repository or owner's name now (0 for a
	// hand-written entry's), as its index is named (RepoKey).
	OrgID  int64
	Branch string
	PR     int64
	State  string
	Flavor string
	// After is where the page starts: the Next of the page before ("" for the newest).
	After string
	// Limit is the most builds returned (50 when 0).
	Limit int
}

// Page is a page of archived builds, newest first; Next, when not empty, is the After of
// the page that follows.
type Page struct {
	Builds []*Record
	Next   string
}

// maxScan bounds the index entries one page reads through for a filter its index has no
// prefix for (a flavor, a state within a branch): past it, the page ends there, with Next.
// maxScans bounds those pages read at once (the others wait for their turn).
const (
	maxScan  = 5000
	maxScans = 4
)

// ErrBadCursor is returned for a Query.After that is no index entry's name.
var ErrBadCursor = errors.New("not a page of this archive")

func (q Query) prefix() (string, error) {
	if q.State != "" && !validState(q.State) {
		return "", fmt.Errorf("archive query: %q is not a final state", q.State)
	}
	var p string
	switch {
	case q.Repo != "":
		p = "repos/" + RepoKey(q.OrgID, q.Repo) + "/"
	case q.Owner != "":
		p = "owners/" + OwnerKey(q.OrgID, q.Owner) + "/"
	default:
		return "", errors.New("archive query: no repository or owner")
	}
	switch {
	case q.PR > 0 && q.Repo != "":
		return p + "pr/" + strconv.FormatInt(q.PR, 10) + "/", nil
	case q.Branch != "" && q.Repo != "":
		return p + "branch/" + digest(q.Branch) + "/", nil
	case q.PR > 0 || q.Branch != "":
		return "", errors.New("archive query: a branch or pull request is one repository's")
	case q.State != "" && q.Repo != "":
		return p + "state/" + q.State + "/", nil
	}
	return p + "all/", nil
}

// List returns a page of the builds q selects. It reads the index entries of one prefix
// (a listing of the store, not of every build) and the records of the builds it returns,
// which it keeps in memory once read.
func (a *Archive) List(ctx context.Context, q Query) (Page, error) {
	prefix, err := q.prefix()
	if err != nil {
		return Page{}, err
	}
	if q.After != "" {
		if _, ok := parseEntry(q.After); !ok {
			return Page{}, ErrBadCursor
		}
	}
	limit := q.Limit
	if limit <= 0 {
		limit = 50
	}
	var picked []entry
	after, scanned, more := q.After, 0, false
	// A page whose prefix is its filter lists the entries it shows and one more; another
	// reads on in larger batches (an S3 listing costs by the entries it returns), one of
	// maxScans at once.
	batch := limit + 1
	if q.Flavor != "" || (q.State != "" && !strings.HasSuffix(prefix, "/state/"+q.State+"/")) {
		batch = 1000
		select {
		case a.scans <- struct{}{}:
			defer func() { <-a.scans }()
		case <-ctx.Done():
			return Page{}, ctx.Err()
		}
	}
	for len(picked) <= limit && scanned < maxScan {
		names, err := a.store.List(ctx, prefix, after, batch)
		if err != nil {
			return Page{}, err
		}
		for _, n := range names {
			after = n
			scanned++
			e, ok := parseEntry(n)
			if !ok || (q.State != "" && e.state != q.State) || (q.Flavor != "" && e.flavor != q.Flavor) {
				continue
			}
			if len(picked) == limit {
				more = true
				break
			}
			picked = append(picked, e)
		}
		if more || len(names) < batch {
			break
		}
	}
	page := Page{}
	if more || scanned >= maxScan {
		page.Next = after
		if more && len(picked) > 0 {
			page.Next = picked[len(picked)-1].name
		}
	}
	recs := make([]*Record, len(picked))
	errs := make([]error, len(picked))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i, e := range picked {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			recs[i], errs[i] = a.record(ctx, e.build)
		}()
	}
	wg.Wait()
	var failed error
	for i, rec := range recs {
		switch {
		case errs[i] == nil:
			page.Builds = append(page.Builds, rec)
		case errors.Is(errs[i], ErrNotFound), errors.Is(errs[i], ErrCorrupt):
			// An entry whose record is not written yet (being archived), or was deleted;
			// one that cannot be read does not hide the others.
		default:
			// Nor does one the store fails to give (a planted object it may not read):
			// the page fails only when no record could be read, the store failing.
			failed = cmp.Or(failed, errs[i])
		}
	}
	if failed != nil && len(page.Builds) == 0 {
		return Page{}, failed
	}
	return page, nil
}

// Latest returns the state of the newest archived push build of a repository's branch in
// one flavor (as organization orgID holds the repository, see RepoKey), from the index
// alone; found is false when there is none.
func (a *Archive) Latest(ctx context.Context, orgID int64, cloneURL, branch, flavor string) (state string, found bool, err error) {
	prefix, err := Query{Repo: cloneURL, OrgID: orgID, Branch: branch}.prefix()
	if err != nil {
		return "", false, err
	}
	// A flavor seldom built on a busy branch reads through many entries: a scan, one of
	// maxScans at once, in batches of a thousand (a directory is read whole each time).
	select {
	case a.scans <- struct{}{}:
		defer func() { <-a.scans }()
	case <-ctx.Done():
		return "", false, ctx.Err()
	}
	const batch = 1000
	after := ""
	for scanned := 0; scanned < maxScan; {
		names, err := a.store.List(ctx, prefix, after, batch)
		if err != nil {
			return "", false, err
		}
		for _, n := range names {
			after = n
			scanned++
			if e, ok := parseEntry(n); ok && e.flavor == flavor {
				return e.state, true, nil
			}
		}
		if len(names) < batch {
			break
		}
	}
	return "", false, nil
}

// Expire deletes the builds that ended before cutoff (by whole days, UTC), and returns
// how many. A build is deleted record first (then it is no longer archived), then its
// logs and index entries.
func (a *Archive) Expire(ctx context.Context, cutoff time.Time) (int, error) {
	last := dayPrefix(cutoff)
	n, after := 0, ""
	var failed error
	for {
		days, err := a.store.List(ctx, "days/", after, 100)
		if err != nil || len(days) == 0 {
			return n, cmp.Or(failed, err)
		}
		for _, day := range days {
			if "days/"+day >= last {
				return n, failed
			}
			m, err := a.expireDay(ctx, "days/"+day)
			n += m
			if ctx.Err() != nil {
				return n, ctx.Err()
			}
			// A day left part-way (a build the store would not delete) does not hold up
			// the days after it; it is taken up again by the next expiry.
			failed = cmp.Or(failed, err)
			after = day
		}
	}
}

func (a *Archive) expireDay(ctx context.Context, day string) (int, error) {
	n, after := 0, ""
	var failed error
	for {
		builds, err := a.store.List(ctx, day, after, 1000)
		if err != nil {
			return n, err
		}
		if len(builds) == 0 {
			return n, failed
		}
		for _, build := range builds {
			if ctx.Err() != nil {
				return n, ctx.Err()
			}
			after = build
			if !isDigest(build) {
				continue // not the archive's (planted): its key is refused, it stays
			}
			if err := a.delete(ctx, build); err != nil {
				failed = cmp.Or(failed, err)
				continue
			}
			if err := a.store.Delete(ctx, day+build); err != nil {
				failed = cmp.Or(failed, err)
				continue
			}
			n++
		}
	}
}

// isDigest reports whether name is a digest as the archive makes them (BuildKey).
func isDigest(name string) bool {
	if len(name) != 32 {
		return false
	}
	for _, c := range name {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// delete removes one build's objects: its index entries first (the record names them),
// then its logs, then its record, so that a deletion cut short is taken up again by the
// next (its day's entry is deleted last, by the caller).
func (a *Archive) delete(ctx context.Context, build string) error {
	rec, err := a.record(ctx, build)
	if err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrCorrupt) {
		return err
	}
	if rec != nil {
		for _, key := range indexKeys(build, rec) {
			if strings.HasPrefix(key, "days/") {
				continue
			}
			if err := a.store.Delete(ctx, key); err != nil {
				return fmt.Errorf("expire %s: %w", rec.JobID, err)
			}
		}
	}
	// A corrupt record names no index entries: they stay, leading lists to no record,
	// which they skip.
	for _, stream := range Streams {
		if err := a.store.Delete(ctx, logKey(build, stream)); err != nil {
			return err
		}
	}
	a.forget(build)
	return a.store.Delete(ctx, recordKey(build))
}

// Summary is the archived build as the lists of builds show it.
func (r *Record) Summary() orchestrator.Summary {
	meta := map[string]string{"REPO_URL": r.Repo, "COMMIT": r.Commit, "BRANCH": r.Branch, "FLAVOR": r.Flavor}
	if r.Tag != "" {
		meta["TAG"] = r.Tag
	}
	if r.PR > 0 {
		meta["PR"] = strconv.FormatInt(r.PR, 10)
	}
	return orchestrator.Summary{
		Namespace: r.Namespace, ID: r.JobID, Meta: meta, State: r.State,
		Submitted: r.Queued, Started: r.Started, Finished: r.Ended, Secrets: r.Secrets,
	}
}

// Merge adds to the builds Nomad lists (live) the archived ones it no longer holds, newest
// first, at most limit: Nomad's word on a build it still holds wins.
func Merge(live []orchestrator.Summary, archived []*Record, limit int) []orchestrator.Summary {
	seen := map[string]bool{}
	for _, s := range live {
		seen[s.Namespace+"\x00"+s.ID] = true
	}
	out := append([]orchestrator.Summary(nil), live...)
	for _, r := range archived {
		if !seen[r.Namespace+"\x00"+r.JobID] {
			out = append(out, r.Summary())
		}
	}
	sortNewest(out)
	if len(out) > limit {
		out = out[:limit]
	}
	return out
}

func sortNewest(s []orchestrator.Summary) {
	slices.SortStableFunc(s, func(a, b orchestrator.Summary) int { return b.Submitted.Compare(a.Submitted) })
}

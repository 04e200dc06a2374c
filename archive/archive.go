// Package archive keeps the builds that have ended, so that every link the bot wrote (a
// commit status, a pull request's comment, a page) still opens the build's log once Nomad
// has collected it. It is an archive, not a database: each finished build is written once
// (its masked, zstd-compressed logs, then its index entries, then its record), and then
// only read, until retention deletes it.
//
// The objects of a build, in a Store (a directory, or an S3 bucket that replicas share):
//
//	builds/<build>/stdout.zst, stderr.zst   the logs as viewers saw them (masked)
//	builds/<build>/record.json              the Record, written last: the build is archived
//	repos/<repo>/all/<entry>                the repository's builds, newest first
//	repos/<repo>/branch/<branch>/<entry>    its pushes to one branch
//	repos/<repo>/pr/<number>/<entry>        the builds of one pull request
//	owners/<owner>/all/<entry>              the builds of an organization's repositories
//	days/<yyyymmdd>/<build>                 the builds that ended that day, for retention
//
// <build>, <repo>, <owner> and <branch> are hex digests (of the namespace and job ID, of
// the clone URL, of the owner's URL, of the branch's name); an index entry's name is
// <newest-first time>_<build>_<state>_<flavor>, so that a listing of one prefix, in the
// store's byte order, is the newest builds first, filterable by state and flavor without
// reading a record. The history pages read those listings, never Nomad.
//
// It does not decide what to archive or mask: the pipeline hands it the logs as masked.
package archive

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"
)

// Record is what the archive keeps of a build that ended, beside its logs.
type Record struct {
	// Version is the record's format.
	Version   int    `json:"v"`
	Namespace string `json:"namespace"`
	JobID     string `json:"job"`
	// Builder is the parameterized job the build was dispatched from.
	Builder string `json:"builder"`
	// Repo is the clone URL (REPO_URL); Commit, Branch, Tag, PR and Flavor the rest of the
	// dispatch meta.
	Repo string `json:"repo"`
	// OrgID is the organization whose installation the repository was built under (its
	// numeric ID on the forge), 0 for a hand-written entry: see HeldBy.
	OrgID  int64  `json:"org,omitempty"`
	Commit string `json:"commit"`
	Branch string `json:"branch,omitempty"`
	Tag    string `json:"tag,omitempty"`
	PR     int64  `json:"pr,omitempty"`
	Flavor string `json:"flavor"`
	// Cause is what started the build: push, tag, pull_request, rebuild, approve,
	// reconciler; Sender who did, as the forge named them.
	Cause  string `json:"cause,omitempty"`
	Sender string `json:"sender,omitempty"`
	// Secrets is true when the build received the repository's secrets.
	Secrets bool `json:"secrets"`
	// State is success, failure or error; Reason the build's status description.
	State  string `json:"state"`
	Reason string `json:"reason"`
	// Queued is when the build was dispatched; Started and Ended its executor task's, zero
	// when it never ran.
	Queued  time.Time `json:"queued"`
	Started time.Time `json:"started,omitzero"`
	Ended   time.Time `json:"ended,omitzero"`
	// Logs are the logs kept, by stream (stdout, stderr).
	Logs map[string]LogInfo `json:"logs,omitempty"`
	// Archived is when the record was written.
	Archived time.Time `json:"archived"`
}

// LogInfo is what the archive kept of one log.
type LogInfo struct {
	// Size is the log's size as kept, uncompressed; Stored its compressed size.
	Size   int64 `json:"size"`
	Stored int64 `json:"stored"`
	// Truncated is true when the log was longer than the archive keeps (Options.MaxLog):
	// it was cut, with a line saying so, and the rest of it was not read.
	Truncated bool `json:"truncated,omitempty"`
}

// Took is how long the build ran.
func (r *Record) Took() time.Duration {
	if r.Started.IsZero() || r.Ended.IsZero() {
		return 0
	}
	return r.Ended.Sub(r.Started).Round(time.Second)
}

// Streams are the logs of a build, in the order the pages show them.
var Streams = []string{"stdout", "stderr"}

// recordVersion is the format of the records written.
const recordVersion = 1

// DefaultMaxLog is the longest log kept whole: a longer one is cut there.
const DefaultMaxLog = 64 << 20

// Options tune an Archive.
type Options struct {
	// MaxLog is the most bytes of a log kept (DefaultMaxLog when 0): a longer log is kept
	// cut, ending with a line that says how much was dropped.
	MaxLog int64
	// TempDir is where a log is compressed before it is written to the store (the
	// system's temporary directory when empty).
	TempDir string
	// Now is the clock (time.Now when nil), for tests.
	Now func() time.Time
}

// Archive is the archive of finished builds in one store. Safe for concurrent use.
type Archive struct {
	store Store
	opts  Options
	// records are immutable once written: kept here, a page shows them without asking
	// the store again.
	mu      sync.Mutex
	records map[string]*Record
	// scans are the pages being read through for a filter (maxScans).
	scans chan struct{}
}

// maxCached bounds the records kept in memory (a record is a few hundred bytes, and
// maxRecord at most).
const maxCached = 20000

// maxRecord is the longest record read: the bot writes a few hundred bytes (a reason of a
// few hundred more).
const maxRecord = 64 << 10

// New returns the archive in store.
func New(store Store, opts Options) *Archive {
	if opts.MaxLog <= 0 {
		opts.MaxLog = DefaultMaxLog
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Archive{store: store, opts: opts, records: map[string]*Record{}, scans: make(chan struct{}, maxScans)}
}

// Open returns the archive a URL names (see OpenStore).
func Open(raw string, opts Options) (*Archive, error) {
	s, err := OpenStore(raw)
	if err != nil {
		return nil, err
	}
	return New(s, opts), nil
}

// Store is the archive's store.
func (a *Archive) Store() Store { return a.store }

// String names the archive's store for messages.
func (a *Archive) String() string { return a.store.String() }

// Check reports whether the store answers: the S3 bucket exists and can be reached.
func (a *Archive) Check(ctx context.Context) error {
	if c, ok := a.store.(interface{ Check(context.Context) error }); ok {
		return c.Check(ctx)
	}
	_, err := a.store.List(ctx, "builds/", "", 1)
	return err
}

// BuildKey is the digest that names a build in the archive.
func BuildKey(ns, jobID string) string { return digest(ns + "\x00" + jobID) }

// RepoKey is the digest that names a repository (by its clone URL) in the archive's index,
// as the organization orgID holds it (0 for a hand-written entry's): a name taken again by
// another organization, once the first one's installation is gone, is another index.
// Forges name repositories without regard to case.
func RepoKey(orgID int64, cloneURL string) string {
	return digest(strconv.FormatInt(orgID, 10) + "\x00" + strings.ToLower(cloneURL))
}

// OwnerKey is the digest that names an owner's repositories (the clone URLs that start
// with ownerURL, which ends with a slash: https://git.example.com/org/) in the index, as
// the organization orgID holds them.
func OwnerKey(orgID int64, ownerURL string) string {
	return digest("owner\x00" + strconv.FormatInt(orgID, 10) + "\x00" + strings.ToLower(ownerURL))
}

// HeldBy reports whether an archived build is shown under the repository's name as it is
// registered now (registered, by the installation of organization orgID, 0 for a
// hand-written entry): a build belongs to whoever held the name when it was built, and is
// not shown once another holds it, or none does (a name can be taken again).
func (r *Record) HeldBy(registered bool, orgID int64) bool {
	return registered && orgID == r.OrgID
}

// OwnerURL is the owner's part of a clone URL: up to its last slash.
func OwnerURL(cloneURL string) string {
	i := strings.LastIndex(cloneURL, "/")
	if i < 0 {
		return ""
	}
	return cloneURL[:i+1]
}

func digest(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:16])
}

func recordKey(build string) string { return "builds/" + build + "/record.json" }
func logKey(build, stream string) string {
	return "builds/" + build + "/" + stream + ".zst"
}

// Logs writes a build's log of stream (stdout or stderr) to w, whole, as its viewers are
// shown it (masked), and returns once it has.
type Logs func(ctx context.Context, stream string, w io.Writer) error

// Write archives a build: its logs (read through logs, compressed, cut past Options.MaxLog),
// its index entries, then its record. A build already archived is not written again
// (written is false). Writing it again after a failure part-way writes the same objects.
func (a *Archive) Write(ctx context.Context, rec Record, logs Logs) (written bool, err error) {
	if rec.Namespace == "" || rec.JobID == "" || rec.Repo == "" {
		return false, errors.New("archive a build: no namespace, job or repository")
	}
	if !validState(rec.State) {
		return false, fmt.Errorf("archive build %s: state %q is not a final state", rec.JobID, rec.State)
	}
	build := BuildKey(rec.Namespace, rec.JobID)
	if _, err := a.Build(ctx, rec.Namespace, rec.JobID); err == nil {
		return false, nil
	} else if !errors.Is(err, ErrNotFound) {
		return false, err
	}
	rec.Version = recordVersion
	rec.Logs = map[string]LogInfo{}
	for _, stream := range Streams {
		if logs == nil {
			break
		}
		info, err := a.putLog(ctx, build, stream, rec.JobID, logs)
		if err != nil {
			return false, fmt.Errorf("archive the %s of %s: %w", stream, rec.JobID, err)
		}
		rec.Logs[stream] = info
	}
	// The index entries at once: each is a round trip to the store, of nothing.
	keys := indexKeys(build, &rec)
	errs := make([]error, len(keys))
	var wg sync.WaitGroup
	for i, key := range keys {
		wg.Go(func() { errs[i] = a.store.Put(ctx, key, bytes.NewReader(nil), 0) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return false, fmt.Errorf("archive build %s: %w", rec.JobID, err)
	}
	rec.Archived = a.opts.Now().UTC()
	raw, err := json.Marshal(rec)
	if err != nil {
		return false, err
	}
	if err := a.store.Put(ctx, recordKey(build), bytes.NewReader(raw), int64(len(raw))); err != nil {
		return false, fmt.Errorf("archive build %s: %w", rec.JobID, err)
	}
	a.remember(build, &rec)
	return true, nil
}

// ErrCut is what the writer given to a Logs func answers once the log reached
// Options.MaxLog: the func stops there and returns it (or an error that wraps it), and the
// log is kept cut.
var ErrCut = errors.New("the log reached the most the archive keeps")

// putLog compresses one log into a temporary file (a log is cut at MaxLog; one that does
// not compress would otherwise be held whole in memory, once per build being archived)
// and writes it.
func (a *Archive) putLog(ctx context.Context, build, stream, jobID string, logs Logs) (LogInfo, error) {
	f, err := os.CreateTemp(a.opts.TempDir, "albatros-log-*.zst")
	if err != nil {
		return LogInfo{}, fmt.Errorf("a temporary file for the log: %w", err)
	}
	defer func() {
		_ = f.Close()
		_ = os.Remove(f.Name())
	}()
	// The fastest level, on one core: the bot's other work shares the machine (the lower
	// memory option costs a third of the speed, bench/archive).
	enc, err := zstd.NewWriter(f, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	if err != nil {
		return LogInfo{}, err
	}
	cut := &cutWriter{w: enc, left: a.opts.MaxLog}
	if err := logs(ctx, stream, cut); err != nil && !errors.Is(err, ErrCut) {
		_ = enc.Close()
		return LogInfo{}, err
	}
	info := LogInfo{Size: cut.kept, Truncated: cut.cut}
	if info.Truncated {
		line := fmt.Sprintf("\n[albatros: this log was cut at %d MiB: the rest of it was not archived]\n", a.opts.MaxLog>>20)
		if _, err := io.WriteString(enc, line); err != nil {
			return LogInfo{}, err
		}
		info.Size += int64(len(line))
	}
	if err := enc.Close(); err != nil {
		return LogInfo{}, err
	}
	stored, err := f.Seek(0, io.SeekCurrent)
	if err != nil {
		return LogInfo{}, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return LogInfo{}, err
	}
	info.Stored = stored
	if err := a.store.Put(ctx, logKey(build, stream), f, stored); err != nil {
		return LogInfo{}, err
	}
	return info, nil
}

// cutWriter passes on the first left bytes, then answers ErrCut.
type cutWriter struct {
	w    io.Writer
	left int64
	kept int64
	cut  bool
}

func (c *cutWriter) Write(p []byte) (int, error) {
	if c.cut {
		return 0, ErrCut
	}
	n := len(p)
	if int64(len(p)) > c.left {
		c.cut = true
		p = p[:c.left]
	}
	if len(p) > 0 {
		if _, err := c.w.Write(p); err != nil {
			return 0, err
		}
		c.left -= int64(len(p))
		c.kept += int64(len(p))
	}
	if c.cut {
		return len(p), ErrCut
	}
	return n, nil
}

func validState(s string) bool { return s == "success" || s == "failure" || s == "error" }

// Build returns the record of an archived build; ErrNotFound when it is not archived (or
// not yet whole).
func (a *Archive) Build(ctx context.Context, ns, jobID string) (*Record, error) {
	return a.record(ctx, BuildKey(ns, jobID))
}

// ErrCorrupt is returned for a record the store holds but that cannot be read as one (cut
// short, overwritten by hand): lists leave it out, and retention deletes it.
var ErrCorrupt = errors.New("the archived record is corrupt")

func (a *Archive) record(ctx context.Context, build string) (*Record, error) {
	a.mu.Lock()
	rec, ok := a.records[build]
	a.mu.Unlock()
	if ok {
		return rec, nil
	}
	rc, err := a.store.Get(ctx, recordKey(build))
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	raw, err := io.ReadAll(io.LimitReader(rc, maxRecord+1))
	if err != nil {
		return nil, fmt.Errorf("archived record %s: %w", build, err)
	}
	if len(raw) > maxRecord {
		// No record the bot writes comes near: one planted in the store does not fill
		// the cache's memory.
		return nil, fmt.Errorf("archived record %s: %w: longer than %d bytes", build, ErrCorrupt, maxRecord)
	}
	rec = &Record{}
	if err := json.Unmarshal(raw, rec); err != nil {
		return nil, fmt.Errorf("archived record %s: %w: %w", build, ErrCorrupt, err)
	}
	if BuildKey(rec.Namespace, rec.JobID) != build {
		return nil, fmt.Errorf("archived record %s names another build: %w", build, ErrNotFound)
	}
	a.remember(build, rec)
	return rec, nil
}

func (a *Archive) remember(build string, rec *Record) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.records) >= maxCached {
		for k := range a.records { // any tenth: records are cheap to read again
			delete(a.records, k)
			if len(a.records) < maxCached*9/10 {
				break
			}
		}
	}
	a.records[build] = rec
}

func (a *Archive) forget(build string) {
	a.mu.Lock()
	delete(a.records, build)
	a.mu.Unlock()
}

// Log opens an archived build's log of stream, decompressed: as long as its record says it
// is, and no longer (a log planted in the store, a small frame that decodes without end,
// stops there with ErrCorrupt).
func (a *Archive) Log(ctx context.Context, ns, jobID, stream string) (io.ReadCloser, error) {
	build := BuildKey(ns, jobID)
	rec, err := a.record(ctx, build)
	if err != nil {
		return nil, err
	}
	size := a.opts.MaxLog + 4096 // a record that does not say: the bound and its cut line
	if info, ok := rec.Logs[stream]; ok {
		size = info.Size
	}
	rc, err := a.store.Get(ctx, logKey(build, stream))
	if err != nil {
		return nil, err
	}
	// Bounded: whoever can write the store could plant a frame asking for any window.
	dec, err := zstd.NewReader(rc, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true), zstd.WithDecoderMaxWindow(8<<20), zstd.WithDecoderMaxMemory(256<<20))
	if err != nil {
		_ = rc.Close()
		return nil, err
	}
	return &decoder{dec: dec, rc: rc, left: size}, nil
}

type decoder struct {
	dec  *zstd.Decoder
	rc   io.ReadCloser
	left int64 // what the record says is left of the log
}

func (d *decoder) Read(p []byte) (int, error) {
	n, err := d.dec.Read(p)
	if int64(n) > d.left {
		n, err = int(d.left), errOverlong
	}
	d.left -= int64(n)
	return n, err
}

// WriteTo decodes in the decoder's own blocks, without a copy through Read.
func (d *decoder) WriteTo(w io.Writer) (int64, error) { return d.dec.WriteTo(&capped{w: w, d: d}) }

// errOverlong is a log that decodes to more than its record says.
var errOverlong = fmt.Errorf("%w: the log is longer than its record says", ErrCorrupt)

// capped writes to w what is left of d's log, and fails past it.
type capped struct {
	w io.Writer
	d *decoder
}

func (c *capped) Write(p []byte) (int, error) {
	over := int64(len(p)) > c.d.left
	if over {
		p = p[:c.d.left]
	}
	n, err := c.w.Write(p)
	c.d.left -= int64(n)
	if err == nil && over {
		err = errOverlong
	}
	return n, err
}

func (d *decoder) Close() error {
	d.dec.Close()
	return d.rc.Close()
}

// entryName is a build's index entry: newest first, then the build, its state and flavor.
func entryName(build string, rec *Record) string {
	return fmt.Sprintf("%016x_%s_%s_%s", ^uint64(rec.Queued.UnixNano()), build, rec.State, rec.Flavor)
}

// entry is an index entry read back.
type entry struct {
	name, build, state, flavor string
}

func parseEntry(name string) (entry, bool) {
	parts := strings.SplitN(name, "_", 4)
	if len(parts) != 4 || len(parts[0]) != 16 || len(parts[1]) != 32 || !validState(parts[2]) {
		return entry{}, false
	}
	return entry{name: name, build: parts[1], state: parts[2], flavor: parts[3]}, true
}

// indexKeys are the index entries of a build.
func indexKeys(build string, rec *Record) []string {
	name := entryName(build, rec)
	repo := "repos/" + RepoKey(rec.OrgID, rec.Repo) + "/"
	keys := []string{repo + "all/" + name, repo + "state/" + rec.State + "/" + name}
	switch {
	case rec.PR > 0:
		keys = append(keys, repo+"pr/"+strconv.FormatInt(rec.PR, 10)+"/"+name)
	case rec.Tag == "" && rec.Branch != "":
		keys = append(keys, repo+"branch/"+digest(rec.Branch)+"/"+name)
	}
	if owner := OwnerURL(rec.Repo); owner != "" {
		keys = append(keys, "owners/"+OwnerKey(rec.OrgID, owner)+"/all/"+name)
	}
	day := rec.Ended
	if day.IsZero() {
		day = rec.Queued
	}
	return append(keys, dayPrefix(day)+build)
}

func dayPrefix(t time.Time) string { return "days/" + t.UTC().Format("20060102") + "/" }

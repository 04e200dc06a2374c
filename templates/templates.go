// Package templates renders what the bot shows people: the live log page of a build (HTML,
// streamed as the build runs, with the terminal's ANSI colours) and the pages of the web
// interface (home, organizations, settings), built from the html/template files embedded
// here. It does no I/O beyond the writer it is given.
package templates

import (
	"embed"
	"html/template"
	"io"
	"strings"
	"time"
)

//go:embed *.html
var files embed.FS

var pages = template.Must(template.New("").Funcs(template.FuncMap{
	"join": func(v []string) string { return strings.Join(v, ", ") },
}).ParseFS(files, "*.html"))

// Page writes the web page name (home, orgs, org, repo, error) with data.
func Page(w io.Writer, name string, data any) error { return pages.ExecuteTemplate(w, name, data) }

// LogPage is the header of a build's log page.
type LogPage struct {
	Repo        string // owner/name, or the clone URL when the forge is unknown
	RepoURL     string // the repository's web page, if known
	Commit      string
	ShortCommit string
	Branch      string
	Tag         string
	PR          string
	Flavor      string
	Namespace   string
	JobID       string
	Submitted   time.Time
	Streams     []Stream
	Raw         string // the plain-text log of the current stream
}

// Stream links one of the build's log streams.
type Stream struct {
	Name    string
	Page    string
	Current bool
}

// LogResult is the footer of a build's log page.
type LogResult struct {
	Result      string // success, failure, error or pending
	Description string
}

// LogHead writes the page up to the opening of the log; the log follows as HTML from ANSI.
func LogHead(w io.Writer, p LogPage) error { return pages.ExecuteTemplate(w, "head", p) }

// LogFoot writes the end of the page: how the build ended.
func LogFoot(w io.Writer, r LogResult) error { return pages.ExecuteTemplate(w, "foot", r) }

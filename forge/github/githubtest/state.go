package githubtest

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// state is everything the fake holds; the Server's mutex guards it.
type state struct {
	users    map[string]*user // by lower-case login
	orgs     map[string]*org
	repos    map[string]*repo // by lower-case full name
	installs map[int64]*installation
	tokens   map[string]*token
	rates    map[string]*rateLimit
	nextID   int64

	statuses  []Status
	comments  []*Comment
	reactions []Reaction
	requests  []string
	jwts      int
	issued    int // installation tokens
	codes     map[string]*grant
	manifests map[string]*Manifest
	created   *Manifest
}

func newState() state {
	return state{
		users: map[string]*user{}, orgs: map[string]*org{}, repos: map[string]*repo{}, installs: map[int64]*installation{},
		tokens: map[string]*token{}, rates: map[string]*rateLimit{}, nextID: 1000,
		codes: map[string]*grant{}, manifests: map[string]*Manifest{},
	}
}

func (st *state) id() int64 { st.nextID++; return st.nextID }

type user struct {
	Login   string
	ID      int64
	Created time.Time
}

type org struct {
	Login  string
	ID     int64
	Admins []string // lower-case logins
	Teams  map[string]*team
}

type team struct {
	Slug    string
	ID      int64
	Members []string // lower-case logins
}

type repo struct {
	Owner     string
	OwnerID   int64
	OwnerType string
	Name      string
	ID        int64
	Private   bool
	Default   string
	branches  map[string]Branch
	perms     map[string]string // lower-case login: admin, write, read
	pulls     map[int]*Pull
	cloneFrom string
}

// Branch is a branch's head.
type Branch struct {
	SHA  string
	Date time.Time
}

// Pull is a pull request of the fake: its head (Head's repository, branch and commit) and
// base.
type Pull struct {
	Number     int
	HeadOwner  string // the head repository's owner: the base's own, or a fork's
	HeadBranch string
	HeadSHA    string
	Commits    []string
	Base       string
	Author     string
	Open       bool
	Draft      bool
	Updated    time.Time
}

type installation struct {
	ID          int64
	Account     string
	AccountID   int64
	AccountType string
	Selection   string          // all, selected
	Selected    map[string]bool // lower-case repository names, for selected
	suspended   bool
	deleted     bool
}

type token struct {
	installation int64
	user         string
	expires      time.Time
	revoked      bool
}

type rateLimit struct {
	limit, remaining int
	reset            time.Time
}

// Status is a commit status written.
type Status struct {
	ID          int64
	Repo, SHA   string
	State       string
	TargetURL   string
	Description string
	Context     string
	Creator     string
}

// Comment is a comment on a pull request, with its edits.
type Comment struct {
	ID      int64
	Repo    string
	Number  int
	Body    string
	Author  string
	Edits   int
	Created time.Time
}

// Reaction is a reaction put on a comment.
type Reaction struct {
	Repo    string
	Comment int64
	Content string
	By      string
}

// sees reports whether c may see repository r.
func (st *state) sees(c caller, r *repo) bool {
	switch {
	case c.installation != nil:
		in := c.installation
		return !in.deleted && strings.EqualFold(in.Account, r.Owner) && (in.Selection == "all" || in.Selected[strings.ToLower(r.Name)])
	case c.user != nil:
		return !r.Private || r.perms[strings.ToLower(c.user.Login)] != ""
	}
	return false
}

// The test's setup.

// AddUser makes a user; its id is returned.
func (s *Server) AddUser(login string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := s.st.id()
	s.st.users[strings.ToLower(login)] = &user{Login: login, ID: id, Created: time.Now().Add(-24 * time.Hour).UTC().Truncate(time.Second)}
	return id
}

// UserID is the id of user login, 0 when there is none.
func (s *Server) UserID(login string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u := s.st.users[strings.ToLower(login)]; u != nil {
		return u.ID
	}
	return 0
}

// AddOrg makes an organization whose admins (owners) are admins; its id is returned.
func (s *Server) AddOrg(login string, admins ...string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := &org{Login: login, ID: s.st.id(), Teams: map[string]*team{}}
	for _, a := range admins {
		o.Admins = append(o.Admins, strings.ToLower(a))
	}
	s.st.orgs[strings.ToLower(login)] = o
	return o.ID
}

// AddTeam makes a team of org with members; its id is returned.
func (s *Server) AddTeam(orgLogin, slug string, members ...string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.st.orgs[strings.ToLower(orgLogin)]
	t := &team{Slug: slug, ID: s.st.id()}
	for _, m := range members {
		t.Members = append(t.Members, strings.ToLower(m))
	}
	o.Teams[slug] = t
	return t.ID
}

// AddRepo makes owner/name (owner a user or organization made before), cloned from
// cloneFrom (a git server's clone URL, credentials in it allowed; "" for none), with
// branch main as its default.
func (s *Server) AddRepo(owner, name string, private bool, cloneFrom string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := &repo{Owner: owner, Name: name, ID: s.st.id(), Private: private, Default: "main", branches: map[string]Branch{},
		perms: map[string]string{}, pulls: map[int]*Pull{}, cloneFrom: cloneFrom, OwnerType: "User"}
	if o := s.st.orgs[strings.ToLower(owner)]; o != nil {
		r.OwnerID, r.OwnerType = o.ID, "Organization"
		for _, a := range o.Admins {
			r.perms[a] = "admin"
		}
	} else if u := s.st.users[strings.ToLower(owner)]; u != nil {
		r.OwnerID = u.ID
		r.perms[strings.ToLower(owner)] = "admin"
	}
	s.st.repos[strings.ToLower(owner+"/"+name)] = r
}

// SetPermission gives login permission (admin, write, read, or "" for none) on owner/name.
func (s *Server) SetPermission(fullName, login, perm string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.st.repos[strings.ToLower(fullName)]
	if perm == "" {
		delete(r.perms, strings.ToLower(login))
		return
	}
	r.perms[strings.ToLower(login)] = perm
}

// SetBranch sets a branch's head.
func (s *Server) SetBranch(fullName, branch, sha string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.repos[strings.ToLower(fullName)].branches[branch] = Branch{SHA: sha, Date: time.Now().UTC().Truncate(time.Second)}
}

// SetPull makes or changes a pull request of fullName.
func (s *Server) SetPull(fullName string, p Pull) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p.Updated.IsZero() {
		p.Updated = time.Now().UTC().Truncate(time.Second)
	}
	if len(p.Commits) == 0 {
		p.Commits = []string{p.HeadSHA}
	}
	s.st.repos[strings.ToLower(fullName)].pulls[p.Number] = &p
}

// Install installs the App on account (a user or organization made before): on all its
// repositories, or on those named. It returns the installation's id.
func (s *Server) Install(account string, repos ...string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	in := &installation{ID: s.st.id(), Account: account, Selection: "all", Selected: map[string]bool{}, AccountType: "User"}
	if o := s.st.orgs[strings.ToLower(account)]; o != nil {
		in.AccountID, in.AccountType = o.ID, "Organization"
	} else if u := s.st.users[strings.ToLower(account)]; u != nil {
		in.AccountID = u.ID
	}
	if len(repos) > 0 {
		in.Selection = "selected"
		for _, r := range repos {
			in.Selected[strings.ToLower(r)] = true
		}
	}
	s.st.installs[in.ID] = in
	return in.ID
}

// Uninstall deletes installation id: its tokens stop working.
func (s *Server) Uninstall(id int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if in := s.st.installs[id]; in != nil {
		in.deleted = true
	}
	delete(s.st.installs, id)
}

// Suspend suspends (or unsuspends) installation id.
func (s *Server) Suspend(id int64, suspended bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.installs[id].suspended = suspended
}

// ExpireTokens makes every installation token issued so far answer 401, as one past its
// expiry does (a bot whose clock runs behind GitHub's keeps using it).
func (s *Server) ExpireTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.st.tokens {
		if t.installation != 0 {
			t.revoked = true
		}
	}
}

// SetRateRemaining sets how many requests installation id has left this hour.
func (s *Server) SetRateRemaining(id int64, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := "installation:" + strconv.FormatInt(id, 10)
	s.st.rates[key] = &rateLimit{limit: 5000, remaining: n, reset: time.Now().Add(time.Hour)}
}

// What the bot did.

// Statuses returns the statuses written on sha, oldest first.
func (s *Server) Statuses(sha string) []Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Status
	for _, st := range s.st.statuses {
		if st.SHA == sha {
			out = append(out, st)
		}
	}
	return out
}

// Comments returns the comments of fullName#number, oldest first.
func (s *Server) Comments(fullName string, number int) []Comment {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Comment
	for _, c := range s.st.comments {
		if strings.EqualFold(c.Repo, fullName) && c.Number == number {
			out = append(out, *c)
		}
	}
	return out
}

// Reactions returns the reactions put on comment id.
func (s *Server) Reactions(id int64) []Reaction {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Reaction
	for _, r := range s.st.reactions {
		if r.Comment == id {
			out = append(out, r)
		}
	}
	return out
}

// TokensIssued is how many installation tokens the fake has issued.
func (s *Server) TokensIssued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.issued
}

// Requests returns the requests served so far ("GET /repos/o/r", without /api/v3).
func (s *Server) Requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.st.requests)
}

// AddComment posts a comment as login on fullName#number (a user writing on the pull
// request), returning it.
func (s *Server) AddComment(fullName string, number int, login, body string) Comment {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := &Comment{ID: s.st.id(), Repo: fullName, Number: number, Body: body, Author: login, Created: time.Now().UTC()}
	s.st.comments = append(s.st.comments, c)
	return *c
}

func (s *Server) repoOf(fullName string) (*repo, error) {
	r := s.st.repos[strings.ToLower(fullName)]
	if r == nil {
		return nil, fmt.Errorf("githubtest: no repository %s", fullName)
	}
	return r, nil
}

// page answers one page of items as GitHub pages a listing: per_page (30 by default, at
// most 100) and page, with a Link header naming the next and last pages.
func page[T any](w http.ResponseWriter, r *http.Request, items []T) []T {
	per, _ := strconv.Atoi(r.URL.Query().Get("per_page"))
	if per <= 0 {
		per = 30
	}
	per = min(per, 100)
	n, _ := strconv.Atoi(r.URL.Query().Get("page"))
	n = max(n, 1)
	last := max((len(items)+per-1)/per, 1)
	link := func(p int, rel string) string {
		u := *r.URL
		u.Scheme, u.Host = "http", r.Host
		u.Path = "/api/v3" + u.Path
		q := u.Query()
		q.Set("page", strconv.Itoa(p))
		q.Set("per_page", strconv.Itoa(per))
		u.RawQuery = q.Encode()
		return fmt.Sprintf("<%s>; rel=%q", u.String(), rel)
	}
	var links []string
	if n < last {
		links = append(links, link(n+1, "next"), link(last, "last"))
	}
	if n > 1 {
		links = append(links, link(n-1, "prev"), link(1, "first"))
	}
	if len(links) > 0 {
		w.Header().Set("Link", strings.Join(links, ", "))
	}
	lo := min((n-1)*per, len(items))
	hi := min(lo+per, len(items))
	return items[lo:hi]
}

// Rename renames the organization old to name, as GitHub does: its id, repositories and
// installations stay its own, and the old login is free for anyone to take.
func (s *Server) Rename(old, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.st.orgs[strings.ToLower(old)]
	delete(s.st.orgs, strings.ToLower(old))
	o.Login = name
	s.st.orgs[strings.ToLower(name)] = o
	for key, r := range s.st.repos {
		if strings.EqualFold(r.Owner, old) {
			delete(s.st.repos, key)
			r.Owner = name
			s.st.repos[strings.ToLower(name+"/"+r.Name)] = r
		}
	}
	for _, in := range s.st.installs {
		if strings.EqualFold(in.Account, old) {
			in.Account = name
		}
	}
}

package testenv

import (
	"cmp"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"code.gitea.io/sdk/gitea"
)

// User is a Gitea user made by CreateUser, with a token that has every scope.
type User struct {
	Name     string
	Password string
	Token    string
}

// Repo is a Gitea repository.
type Repo struct {
	Owner string
	Name  string
	// CloneURL is the HTTP clone URL as Gitea reports it (and as webhooks carry it).
	CloneURL string
	HTMLURL  string
}

// FullName is owner/name.
func (r *Repo) FullName() string { return r.Owner + "/" + r.Name }

// UniqueName returns prefix followed by a random suffix: tests share one Gitea, so each
// names its own users, organizations and repositories.
func UniqueName(prefix string) string {
	return prefix + "-" + randomHex(4)
}

// Client returns an SDK client acting with token (the admin's when token is empty).
func (g *Gitea) Client(t T, token string) *gitea.Client {
	t.Helper()
	if token == "" {
		token = g.AdminToken
	}
	c, err := gitea.NewClient(g.URL, gitea.SetToken(token))
	if err != nil {
		t.Fatalf("gitea client: %v", err)
	}
	return c
}

// CreateUser creates a user with a password and an all-scope token.
func (g *Gitea) CreateUser(t T, name string) *User {
	t.Helper()
	u := &User{Name: name, Password: "pw-" + randomHex(8)}
	mustChange := false
	if _, _, err := g.Client(t, "").AdminCreateUser(gitea.CreateUserOption{
		Username: name, Email: name + "@example.com", Password: u.Password, MustChangePassword: &mustChange,
	}); err != nil {
		t.Fatalf("create gitea user %s: %v", name, err)
	}
	tok, err := g.createToken(name, u.Password)
	if err != nil {
		t.Fatalf("%v", err)
	}
	u.Token = tok
	return u
}

// CreateOrg creates an organization owned by owner.
func (g *Gitea) CreateOrg(t T, owner *User, name string) {
	t.Helper()
	if _, _, err := g.Client(t, owner.Token).CreateOrg(gitea.CreateOrgOption{Name: name, Visibility: gitea.VisibleTypePublic}); err != nil {
		t.Fatalf("create gitea org %s: %v", name, err)
	}
}

// CreateRepo creates an empty public repository, in org when org is not empty, else in the
// owner's own namespace.
func (g *Gitea) CreateRepo(t T, owner *User, org, name string) *Repo {
	t.Helper()
	return g.createRepo(t, owner, org, name, false)
}

// CreatePrivateRepo creates an empty private repository, as CreateRepo does.
func (g *Gitea) CreatePrivateRepo(t T, owner *User, org, name string) *Repo {
	t.Helper()
	return g.createRepo(t, owner, org, name, true)
}

func (g *Gitea) createRepo(t T, owner *User, org, name string, private bool) *Repo {
	t.Helper()
	c := g.Client(t, owner.Token)
	opt := gitea.CreateRepoOption{Name: name, DefaultBranch: "main", Private: private}
	var r *gitea.Repository
	var err error
	if org != "" {
		r, _, err = c.CreateOrgRepo(org, opt)
	} else {
		r, _, err = c.CreateRepo(opt)
	}
	if err != nil {
		t.Fatalf("create gitea repo %s/%s: %v", org, name, err)
	}
	return repoOf(r)
}

// Fork forks repo into user's namespace.
func (g *Gitea) Fork(t T, user *User, repo *Repo) *Repo {
	t.Helper()
	r, _, err := g.Client(t, user.Token).CreateFork(repo.Owner, repo.Name, gitea.CreateForkOption{})
	if err != nil {
		t.Fatalf("fork %s as %s: %v", repo.FullName(), user.Name, err)
	}
	return repoOf(r)
}

func repoOf(r *gitea.Repository) *Repo {
	return &Repo{Owner: r.Owner.UserName, Name: r.Name, CloneURL: r.CloneURL, HTMLURL: r.HTMLURL}
}

// AddCollaborator gives user write access to repo.
func (g *Gitea) AddCollaborator(t T, owner *User, repo *Repo, user string) {
	t.Helper()
	perm := gitea.AccessModeWrite
	if _, err := g.Client(t, owner.Token).AddCollaborator(repo.Owner, repo.Name, user, gitea.AddCollaboratorOption{Permission: &perm}); err != nil {
		t.Fatalf("add %s to %s: %v", user, repo.FullName(), err)
	}
}

// CreateWebhook installs a Gitea-type JSON webhook on repo that posts the given events (all
// of push, create, delete, pull_request, issue_comment when none are given) to target,
// signed with secret. It returns the hook's id.
func (g *Gitea) CreateWebhook(t T, user *User, repo *Repo, target, secret string, events ...string) int64 {
	t.Helper()
	if len(events) == 0 {
		events = []string{"push", "create", "delete", "pull_request", "issue_comment"}
	}
	h, _, err := g.Client(t, user.Token).CreateRepoHook(repo.Owner, repo.Name, gitea.CreateHookOption{
		Type:   gitea.HookTypeGitea,
		Config: map[string]string{"url": target, "content_type": "json", "secret": secret},
		Events: events,
		Active: true,
	})
	if err != nil {
		t.Fatalf("create webhook on %s: %v", repo.FullName(), err)
	}
	return h.ID
}

// CreateOAuth2App registers an OAuth2 application owned by user and returns its client id
// and secret.
func (g *Gitea) CreateOAuth2App(t T, user *User, name string, redirectURIs ...string) (clientID, clientSecret string) {
	t.Helper()
	app, _, err := g.Client(t, user.Token).CreateOauth2(gitea.CreateOauth2Option{
		Name: name, ConfidentialClient: true, RedirectURIs: redirectURIs,
	})
	if err != nil {
		t.Fatalf("create oauth2 app %s: %v", name, err)
	}
	return app.ClientID, app.ClientSecret
}

// CreatePullRequest opens a pull request on base from head ("branch", or "owner:branch" for
// a fork) into baseBranch, as user, and returns its number.
func (g *Gitea) CreatePullRequest(t T, user *User, base *Repo, head, baseBranch, title string) int64 {
	t.Helper()
	pr, _, err := g.Client(t, user.Token).CreatePullRequest(base.Owner, base.Name, gitea.CreatePullRequestOption{
		Head: head, Base: baseBranch, Title: title,
	})
	if err != nil {
		t.Fatalf("open pull request %s -> %s:%s: %v", head, base.FullName(), baseBranch, err)
	}
	return pr.Index
}

// Statuses lists the commit statuses of sha on repo, newest first (by id: Gitea's own order
// is by creation second, in any order within one).
func (g *Gitea) Statuses(t T, repo *Repo, sha string) []*gitea.Status {
	t.Helper()
	st, _, err := g.Client(t, "").ListStatuses(repo.Owner, repo.Name, sha, gitea.ListStatusesOption{})
	if err != nil {
		t.Fatalf("list statuses of %s@%s: %v", repo.FullName(), sha, err)
	}
	slices.SortFunc(st, func(a, b *gitea.Status) int { return cmp.Compare(b.ID, a.ID) })
	return st
}

// Comments lists the comments on issue or pull request number index of repo.
func (g *Gitea) Comments(t T, repo *Repo, index int64) []*gitea.Comment {
	t.Helper()
	cs, _, err := g.Client(t, "").ListIssueComments(repo.Owner, repo.Name, index, gitea.ListIssueCommentOptions{})
	if err != nil {
		t.Fatalf("list comments of %s#%d: %v", repo.FullName(), index, err)
	}
	return cs
}

// File is one file of a commit made by Push.
type File struct {
	Content    string
	Executable bool
}

// Push commits files on top of branch (or, for a new branch, on top of from, or as a first
// commit when from is empty) and pushes it over HTTP as user. It returns the commit's SHA.
func (g *Gitea) Push(t T, user *User, repo *Repo, branch, from string, files map[string]File, message string) string {
	t.Helper()
	dir := g.checkout(t, user, repo)
	switch {
	case g.git(t, dir, "ls-remote", "--heads", "origin", branch) != "":
		g.git(t, dir, "checkout", "-q", "-B", branch, "origin/"+branch)
	case from != "":
		g.git(t, dir, "checkout", "-q", "-B", branch, "origin/"+from)
	default:
		g.git(t, dir, "checkout", "-q", "--orphan", branch)
	}
	writeFiles(t, dir, files)
	g.git(t, dir, "add", "-A")
	g.git(t, dir, "commit", "-q", "--allow-empty", "-m", message)
	sha := strings.TrimSpace(g.git(t, dir, "rev-parse", "HEAD"))
	g.git(t, dir, "push", "-q", "origin", "HEAD:refs/heads/"+branch)
	g.waitBranch(t, user, repo, branch, sha)
	return sha
}

// waitBranch waits until Gitea's API shows branch at sha: Gitea records pushed branches in
// its database from a queue, after the push has returned, and pull requests and branch
// lookups see only what is recorded.
func (g *Gitea) waitBranch(t T, user *User, repo *Repo, branch, sha string) {
	t.Helper()
	c := g.Client(t, user.Token)
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, _, err := c.GetRepoBranch(repo.Owner, repo.Name, branch)
		if err == nil && b.Commit != nil && b.Commit.ID == sha {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("branch %s of %s not at %s in Gitea after 30s (last: %v)", branch, repo.FullName(), sha, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// PushTag creates tag at sha and pushes it as user.
func (g *Gitea) PushTag(t T, user *User, repo *Repo, tag, sha string) {
	t.Helper()
	dir := g.checkout(t, user, repo)
	g.git(t, dir, "tag", tag, sha)
	g.git(t, dir, "push", "-q", "origin", "refs/tags/"+tag)
}

// checkout clones repo into a fresh temporary directory with user's credentials.
func (g *Gitea) checkout(t T, user *User, repo *Repo) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "alb-git-")
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	u, err := url.Parse(repo.CloneURL)
	if err != nil {
		t.Fatalf("clone url %q: %v", repo.CloneURL, err)
	}
	u.User = url.UserPassword(user.Name, user.Token)
	g.git(t, dir, "init", "-q", "-b", "main")
	g.git(t, dir, "remote", "add", "origin", u.String())
	g.git(t, dir, "fetch", "-q", "origin")
	return dir
}

func (g *Gitea) git(t T, dir string, args ...string) string {
	t.Helper()
	return git(t, dir, args...)
}

// String names the repository in messages.
func (r *Repo) String() string { return fmt.Sprintf("%s (%s)", r.FullName(), r.CloneURL) }

// DeleteRef deletes a branch or tag by pushing nothing to it (git push origin :ref), as
// user, the way it is done from the command line.
func (g *Gitea) DeleteRef(t T, user *User, repo *Repo, ref string) {
	t.Helper()
	dir := g.checkout(t, user, repo)
	g.git(t, dir, "push", "-q", "origin", ":"+ref)
}

// PushForReview commits files on top of base and pushes them for review as user, the AGit
// way (git push origin HEAD:refs/for/<base> -o topic=<topic>): Gitea opens a pull request
// of them, which reading the repository is enough for. It returns the commit's SHA.
func (g *Gitea) PushForReview(t T, user *User, repo *Repo, base, topic string, files map[string]File, message string) string {
	t.Helper()
	dir := g.checkout(t, user, repo)
	g.git(t, dir, "checkout", "-q", "-B", topic, "origin/"+base)
	writeFiles(t, dir, files)
	g.git(t, dir, "add", "-A")
	g.git(t, dir, "commit", "-q", "--allow-empty", "-m", message)
	sha := strings.TrimSpace(g.git(t, dir, "rev-parse", "HEAD"))
	g.git(t, dir, "push", "-q", "origin", "HEAD:refs/for/"+base, "-o", "topic="+topic)
	return sha
}

// SetPullRequestState closes (open false) or reopens a pull request as user.
func (g *Gitea) SetPullRequestState(t T, user *User, repo *Repo, index int64, open bool) {
	t.Helper()
	state := gitea.StateClosed
	if open {
		state = gitea.StateOpen
	}
	if _, _, err := g.Client(t, user.Token).EditPullRequest(repo.Owner, repo.Name, index, gitea.EditPullRequestOption{State: &state}); err != nil {
		t.Fatalf("set %s#%d %s: %v", repo.FullName(), index, state, err)
	}
}

// PullRequests lists the open pull requests of repo.
func (g *Gitea) PullRequests(t T, repo *Repo) []*gitea.PullRequest {
	t.Helper()
	prs, _, err := g.Client(t, "").ListRepoPullRequests(repo.Owner, repo.Name, gitea.ListPullRequestsOptions{State: gitea.StateOpen})
	if err != nil {
		t.Fatalf("list pull requests of %s: %v", repo.FullName(), err)
	}
	return prs
}

// WaitStatus waits, up to within, until the newest status of sha on repo in context has
// state, and returns it; it fails the test with the last status seen.
func (g *Gitea) WaitStatus(t T, repo *Repo, sha, context string, state gitea.StatusState, within time.Duration) *gitea.Status {
	t.Helper()
	deadline := time.Now().Add(within)
	var last *gitea.Status
	for time.Now().Before(deadline) {
		for _, s := range g.Statuses(t, repo, sha) {
			if s.Context == context {
				last = s
				break
			}
		}
		if last != nil && last.State == state {
			return last
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("status %s of %s never became %s; last: %+v", context, sha, state, last)
	return nil
}

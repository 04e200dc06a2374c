package githubtest

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The JSON objects, in the shape GitHub's REST API documents, of what the handlers answer.

func (s *Server) userJSON(login string, id int64, typ string) map[string]any {
	return map[string]any{"login": login, "id": id, "type": typ, "html_url": s.URL + "/" + login, "site_admin": false}
}

func (s *Server) accountJSON(login string) map[string]any {
	if o := s.st.orgs[strings.ToLower(login)]; o != nil {
		return s.userJSON(o.Login, o.ID, "Organization")
	}
	if u := s.st.users[strings.ToLower(login)]; u != nil {
		return s.userJSON(u.Login, u.ID, "User")
	}
	if login == s.App.Slug+"[bot]" {
		return s.userJSON(login, BotID, "Bot")
	}
	return s.userJSON(login, 0, "User")
}

func (s *Server) repoJSON(r *repo) map[string]any {
	full := r.Owner + "/" + r.Name
	visibility := "public"
	if r.Private {
		visibility = "private"
	}
	return map[string]any{
		"id": r.ID, "node_id": "R_" + strconv.FormatInt(r.ID, 10), "name": r.Name, "full_name": full, "private": r.Private, "visibility": visibility,
		"owner":    s.userJSON(r.Owner, r.OwnerID, r.OwnerType),
		"html_url": s.URL + "/" + full, "clone_url": s.URL + "/" + full + ".git", "git_url": "git:" + strings.TrimPrefix(s.URL, "http:") + "/" + full + ".git",
		"url": s.API + "repos/" + full, "default_branch": r.Default, "archived": false, "fork": false,
	}
}

func (s *Server) installationJSON(in *installation) map[string]any {
	return map[string]any{
		"id": in.ID, "account": s.userJSON(in.Account, in.AccountID, in.AccountType), "repository_selection": in.Selection,
		"app_id": s.App.ID, "app_slug": s.App.Slug, "target_id": in.AccountID, "target_type": in.AccountType,
		"access_tokens_url": s.API + "app/installations/" + strconv.FormatInt(in.ID, 10) + "/access_tokens",
		"permissions":       map[string]string{"statuses": "write", "issues": "write", "pull_requests": "read", "metadata": "read", "contents": "read", "members": "read"},
		"events":            []string{"push", "pull_request", "issue_comment"},
		"suspended_at":      nil,
	}
}

func (s *Server) pullJSON(r *repo, p *Pull) map[string]any {
	state := "closed"
	if p.Open {
		state = "open"
	}
	head := s.repoJSON(r)
	if !strings.EqualFold(p.HeadOwner, r.Owner) && p.HeadOwner != "" {
		fork := *r
		fork.Owner, fork.OwnerID, fork.OwnerType, fork.ID = p.HeadOwner, 0, "User", r.ID+100000
		if u := s.st.users[strings.ToLower(p.HeadOwner)]; u != nil {
			fork.OwnerID = u.ID
		}
		head = s.repoJSON(&fork)
		head["fork"] = true
	}
	return map[string]any{
		"id": r.ID*1000 + int64(p.Number), "number": p.Number, "state": state, "draft": p.Draft, "title": "Pull request " + strconv.Itoa(p.Number),
		"user": s.accountJSON(p.Author), "updated_at": p.Updated.Format(time.RFC3339),
		"html_url": s.URL + "/" + r.Owner + "/" + r.Name + "/pull/" + strconv.Itoa(p.Number),
		"head":     map[string]any{"label": p.HeadOwner + ":" + p.HeadBranch, "ref": p.HeadBranch, "sha": p.HeadSHA, "repo": head, "user": s.accountJSON(p.HeadOwner)},
		"base":     map[string]any{"label": r.Owner + ":" + p.Base, "ref": p.Base, "sha": r.branches[p.Base].SHA, "repo": s.repoJSON(r)},
	}
}

func (s *Server) commentJSON(c *Comment) map[string]any {
	return map[string]any{
		"id": c.ID, "body": c.Body, "user": s.accountJSON(c.Author), "created_at": c.Created.Format(time.RFC3339),
		"html_url": s.URL + "/" + c.Repo + "/pull/" + strconv.Itoa(c.Number) + "#issuecomment-" + strconv.FormatInt(c.ID, 10),
	}
}

// The handlers.

func (s *Server) getApp(w http.ResponseWriter, r *http.Request) {
	reply(w, http.StatusOK, map[string]any{"id": s.App.ID, "slug": s.App.Slug, "name": s.App.Slug, "client_id": s.App.ClientID,
		"owner": s.userJSON("octo-org", 1, "Organization"), "html_url": s.URL + "/apps/" + s.App.Slug})
}

func (s *Server) getInstallation(w http.ResponseWriter, r *http.Request) {
	id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
	s.mu.Lock()
	defer s.mu.Unlock()
	in := s.st.installs[id]
	if in == nil {
		apiError(w, http.StatusNotFound, "Not Found")
		return
	}
	reply(w, http.StatusOK, s.installationJSON(in))
}

func (s *Server) listInstallations(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var all []*installation
	for _, in := range s.st.installs {
		all = append(all, in)
	}
	slices.SortFunc(all, func(a, b *installation) int { return int(a.ID - b.ID) })
	out := []map[string]any{}
	for _, in := range page(w, r, all) {
		j := s.installationJSON(in)
		if in.suspended {
			j["suspended_at"] = time.Now().UTC().Format(time.RFC3339)
		}
		out = append(out, j)
	}
	reply(w, http.StatusOK, out)
}

// createToken issues an installation token: POST /app/installations/{id}/access_tokens,
// 201 with token and expires_at.
func (s *Server) createToken(w http.ResponseWriter, r *http.Request) {
	id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
	s.mu.Lock()
	defer s.mu.Unlock()
	in := s.st.installs[id]
	switch {
	case in == nil:
		apiError(w, http.StatusNotFound, "Not Found")
		return
	case in.suspended:
		apiError(w, http.StatusForbidden, "This installation has been suspended")
		return
	}
	tok := "ghs_" + random(18)
	exp := time.Now().Add(s.TokenTTL).UTC().Truncate(time.Second)
	s.st.tokens[tok] = &token{installation: id, expires: exp}
	s.st.issued++
	reply(w, http.StatusCreated, map[string]any{"token": tok, "expires_at": exp.Format(time.RFC3339), "repository_selection": in.Selection,
		"permissions": map[string]string{"statuses": "write", "issues": "write", "pull_requests": "read", "metadata": "read", "contents": "read", "members": "read"}})
}

func (s *Server) installationRepos(w http.ResponseWriter, r *http.Request, in *installation) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var all []*repo
	for _, rp := range s.st.repos {
		if s.st.sees(caller{installation: in}, rp) {
			all = append(all, rp)
		}
	}
	slices.SortFunc(all, func(a, b *repo) int { return strings.Compare(a.Name, b.Name) })
	var out []map[string]any
	for _, rp := range page(w, r, all) {
		out = append(out, s.repoJSON(rp))
	}
	reply(w, http.StatusOK, map[string]any{"total_count": len(all), "repository_selection": in.Selection, "repositories": out})
}

func (s *Server) getUserByLogin(w http.ResponseWriter, r *http.Request, _ caller) {
	s.mu.Lock()
	defer s.mu.Unlock()
	login := r.PathValue("login")
	if u := s.st.users[strings.ToLower(login)]; u != nil {
		j := s.userJSON(u.Login, u.ID, "User")
		j["created_at"] = u.Created.Format(time.RFC3339)
		reply(w, http.StatusOK, j)
		return
	}
	if o := s.st.orgs[strings.ToLower(login)]; o != nil {
		reply(w, http.StatusOK, s.userJSON(o.Login, o.ID, "Organization"))
		return
	}
	apiError(w, http.StatusNotFound, "Not Found")
}

func (s *Server) getOrg(w http.ResponseWriter, r *http.Request, _ caller) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.st.orgs[strings.ToLower(r.PathValue("org"))]
	if o == nil {
		apiError(w, http.StatusNotFound, "Not Found")
		return
	}
	reply(w, http.StatusOK, s.userJSON(o.Login, o.ID, "Organization"))
}

func (s *Server) getTeam(w http.ResponseWriter, r *http.Request, _ caller) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.st.orgs[strings.ToLower(r.PathValue("org"))]
	if o == nil || o.Teams[r.PathValue("slug")] == nil {
		apiError(w, http.StatusNotFound, "Not Found")
		return
	}
	t := o.Teams[r.PathValue("slug")]
	reply(w, http.StatusOK, map[string]any{"id": t.ID, "slug": t.Slug, "name": t.Slug})
}

func (s *Server) membership(w http.ResponseWriter, t *team, login string) {
	if t == nil || !slices.Contains(t.Members, strings.ToLower(login)) {
		apiError(w, http.StatusNotFound, "Not Found")
		return
	}
	reply(w, http.StatusOK, map[string]any{"state": "active", "role": "member"})
}

func (s *Server) teamMembershipBySlug(w http.ResponseWriter, r *http.Request, _ caller) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var t *team
	if o := s.st.orgs[strings.ToLower(r.PathValue("org"))]; o != nil {
		t = o.Teams[r.PathValue("slug")]
	}
	s.membership(w, t, r.PathValue("login"))
}

func (s *Server) teamMembershipByID(w http.ResponseWriter, r *http.Request, _ caller) {
	orgID, _ := strconv.ParseInt(r.PathValue("orgid"), 10, 64)
	teamID, _ := strconv.ParseInt(r.PathValue("teamid"), 10, 64)
	s.mu.Lock()
	defer s.mu.Unlock()
	var found *team
	for _, o := range s.st.orgs {
		if o.ID != orgID {
			continue
		}
		for _, t := range o.Teams {
			if t.ID == teamID {
				found = t
			}
		}
	}
	s.membership(w, found, r.PathValue("login"))
}

func (s *Server) getRepo(w http.ResponseWriter, r *http.Request, rp *repo, _ caller) {
	s.mu.Lock()
	defer s.mu.Unlock()
	reply(w, http.StatusOK, s.repoJSON(rp))
}

func (s *Server) getBranch(w http.ResponseWriter, r *http.Request, rp *repo, _ caller) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := rp.branches[r.PathValue("branch")]
	if !ok {
		apiError(w, http.StatusNotFound, "Branch not found")
		return
	}
	reply(w, http.StatusOK, map[string]any{"name": r.PathValue("branch"), "protected": false,
		"commit": map[string]any{"sha": b.SHA, "commit": map[string]any{
			"author":    map[string]any{"name": "octocat", "date": b.Date.Format(time.RFC3339)},
			"committer": map[string]any{"name": "octocat", "date": b.Date.Format(time.RFC3339)},
		}}})
}

// createStatus: POST /repos/{owner}/{repo}/statuses/{sha}; an installation needs the
// statuses permission (which the fake's App has), a user write access.
func (s *Server) createStatus(w http.ResponseWriter, r *http.Request, rp *repo, c caller) {
	var in struct {
		State       string `json:"state"`
		TargetURL   string `json:"target_url"`
		Description string `json:"description"`
		Context     string `json:"context"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&in); err != nil {
		apiError(w, http.StatusBadRequest, "Problems parsing JSON")
		return
	}
	switch {
	case !slices.Contains([]string{"pending", "success", "failure", "error"}, in.State):
		apiError(w, http.StatusUnprocessableEntity, "Validation Failed: state")
		return
	case len([]rune(in.Description)) > 140:
		apiError(w, http.StatusUnprocessableEntity, "Validation Failed: description is too long (maximum is 140 characters)")
		return
	case c.user != nil && !slices.Contains([]string{"admin", "write"}, rp.perms[strings.ToLower(c.user.Login)]):
		apiError(w, http.StatusNotFound, "Not Found")
		return
	}
	if in.Context == "" {
		in.Context = "default"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	creator := s.App.Slug + "[bot]"
	if c.user != nil {
		creator = c.user.Login
	}
	st := Status{ID: s.st.id(), Repo: rp.Owner + "/" + rp.Name, SHA: r.PathValue("sha"), State: in.State, TargetURL: in.TargetURL,
		Description: in.Description, Context: in.Context, Creator: creator}
	s.st.statuses = append(s.st.statuses, st)
	reply(w, http.StatusCreated, statusJSON(st))
}

func statusJSON(st Status) map[string]any {
	return map[string]any{"id": st.ID, "state": st.State, "target_url": st.TargetURL, "description": st.Description, "context": st.Context}
}

// listStatuses: newest first, paged.
func (s *Server) listStatuses(w http.ResponseWriter, r *http.Request, rp *repo, _ caller) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var all []map[string]any
	for i := len(s.st.statuses) - 1; i >= 0; i-- {
		st := s.st.statuses[i]
		if st.SHA == r.PathValue("ref") && strings.EqualFold(st.Repo, rp.Owner+"/"+rp.Name) {
			all = append(all, statusJSON(st))
		}
	}
	reply(w, http.StatusOK, nonNil(page(w, r, all)))
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// permission: GET /repos/{owner}/{repo}/collaborators/{username}/permission.
func (s *Server) permission(w http.ResponseWriter, r *http.Request, rp *repo, _ caller) {
	s.mu.Lock()
	defer s.mu.Unlock()
	login := r.PathValue("login")
	u := s.st.users[strings.ToLower(login)]
	if u == nil {
		apiError(w, http.StatusNotFound, "Not Found")
		return
	}
	perm := rp.perms[strings.ToLower(login)]
	if perm == "" {
		perm = "none"
		if !rp.Private {
			perm = "read"
		}
	}
	reply(w, http.StatusOK, map[string]any{"permission": perm, "role_name": perm, "user": s.userJSON(u.Login, u.ID, "User")})
}

func (s *Server) listComments(w http.ResponseWriter, r *http.Request, rp *repo, _ caller) {
	n, _ := strconv.Atoi(r.PathValue("number"))
	s.mu.Lock()
	defer s.mu.Unlock()
	var all []map[string]any
	for _, c := range s.st.comments {
		if strings.EqualFold(c.Repo, rp.Owner+"/"+rp.Name) && c.Number == n {
			all = append(all, s.commentJSON(c))
		}
	}
	reply(w, http.StatusOK, nonNil(page(w, r, all)))
}

func (s *Server) author(c caller) string {
	if c.user != nil {
		return c.user.Login
	}
	return s.App.Slug + "[bot]"
}

func (s *Server) createComment(w http.ResponseWriter, r *http.Request, rp *repo, c caller) {
	n, _ := strconv.Atoi(r.PathValue("number"))
	var in struct {
		Body string `json:"body"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&in); err != nil || in.Body == "" {
		apiError(w, http.StatusUnprocessableEntity, "Validation Failed: body")
		return
	}
	if len([]rune(in.Body)) > 65536 {
		apiError(w, http.StatusUnprocessableEntity, "Validation Failed: body is too long (maximum is 65536 characters)")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if rp.pulls[n] == nil {
		apiError(w, http.StatusNotFound, "Not Found")
		return
	}
	cm := &Comment{ID: s.st.id(), Repo: rp.Owner + "/" + rp.Name, Number: n, Body: in.Body, Author: s.author(c), Created: time.Now().UTC()}
	s.st.comments = append(s.st.comments, cm)
	reply(w, http.StatusCreated, s.commentJSON(cm))
}

func (s *Server) editComment(w http.ResponseWriter, r *http.Request, rp *repo, c caller) {
	id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
	var in struct {
		Body string `json:"body"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&in); err != nil || in.Body == "" {
		apiError(w, http.StatusUnprocessableEntity, "Validation Failed: body")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, cm := range s.st.comments {
		if cm.ID == id && strings.EqualFold(cm.Repo, rp.Owner+"/"+rp.Name) {
			if cm.Author != s.author(c) {
				apiError(w, http.StatusForbidden, "Resource not accessible by integration")
				return
			}
			cm.Body = in.Body
			cm.Edits++
			reply(w, http.StatusOK, s.commentJSON(cm))
			return
		}
	}
	apiError(w, http.StatusNotFound, "Not Found")
}

func (s *Server) react(w http.ResponseWriter, r *http.Request, rp *repo, c caller) {
	id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
	var in struct {
		Content string `json:"content"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&in); err != nil ||
		!slices.Contains([]string{"+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes"}, in.Content) {
		apiError(w, http.StatusUnprocessableEntity, "Validation Failed: content")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	found := false
	for _, cm := range s.st.comments {
		found = found || (cm.ID == id && strings.EqualFold(cm.Repo, rp.Owner+"/"+rp.Name))
	}
	if !found {
		apiError(w, http.StatusNotFound, "Not Found")
		return
	}
	by := s.author(c)
	for _, re := range s.st.reactions {
		if re.Comment == id && re.Content == in.Content && re.By == by {
			reply(w, http.StatusOK, map[string]any{"id": id, "content": in.Content, "user": s.accountJSON(by)})
			return
		}
	}
	s.st.reactions = append(s.st.reactions, Reaction{Repo: rp.Owner + "/" + rp.Name, Comment: id, Content: in.Content, By: by})
	reply(w, http.StatusCreated, map[string]any{"id": id, "content": in.Content, "user": s.accountJSON(by)})
}

func (s *Server) getPull(w http.ResponseWriter, r *http.Request, rp *repo, _ caller) {
	n, _ := strconv.Atoi(r.PathValue("number"))
	s.mu.Lock()
	defer s.mu.Unlock()
	p := rp.pulls[n]
	if p == nil {
		apiError(w, http.StatusNotFound, "Not Found")
		return
	}
	reply(w, http.StatusOK, s.pullJSON(rp, p))
}

func (s *Server) pullCommits(w http.ResponseWriter, r *http.Request, rp *repo, _ caller) {
	n, _ := strconv.Atoi(r.PathValue("number"))
	s.mu.Lock()
	defer s.mu.Unlock()
	p := rp.pulls[n]
	if p == nil {
		apiError(w, http.StatusNotFound, "Not Found")
		return
	}
	var all []map[string]any
	for _, sha := range p.Commits {
		all = append(all, map[string]any{"sha": sha})
	}
	reply(w, http.StatusOK, nonNil(page(w, r, all)))
}

// listPulls: state (open by default), sort=updated direction=desc as the bot asks.
func (s *Server) listPulls(w http.ResponseWriter, r *http.Request, rp *repo, _ caller) {
	s.mu.Lock()
	defer s.mu.Unlock()
	state := r.URL.Query().Get("state")
	var ps []*Pull
	for _, p := range rp.pulls {
		if state == "all" || (state == "closed") != p.Open {
			ps = append(ps, p)
		}
	}
	slices.SortFunc(ps, func(a, b *Pull) int {
		if c := b.Updated.Compare(a.Updated); c != 0 {
			return c
		}
		return b.Number - a.Number
	})
	var all []map[string]any
	for _, p := range ps {
		all = append(all, s.pullJSON(rp, p))
	}
	reply(w, http.StatusOK, nonNil(page(w, r, all)))
}

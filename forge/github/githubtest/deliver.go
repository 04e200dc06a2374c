package githubtest

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/albatros-ci/albatros/forge/forgetest"
)

// example reads one of GitHub's published example payloads (forge/forgetest's testdata),
// to be filled with the fake's objects: the shape is GitHub's, the values the fake's.
func example(name string) map[string]any {
	b, err := fs.ReadFile(forgetest.GitHub, name)
	if err != nil {
		panic(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		panic(err)
	}
	return m
}

// merge sets the keys of with over those of m (nested objects merged alike).
func merge(m, with map[string]any) map[string]any {
	for k, v := range with {
		if sub, ok := v.(map[string]any); ok {
			if into, ok := m[k].(map[string]any); ok {
				m[k] = merge(into, sub)
				continue
			}
		}
		m[k] = v
	}
	return m
}

// installationOf is the installation object an App delivery about fullName carries: the
// installation holding it, 0 when none does.
func (s *Server) installationOf(fullName string) map[string]any {
	for _, in := range s.st.installs {
		r := s.st.repos[strings.ToLower(fullName)]
		if r != nil && s.st.sees(caller{installation: in}, r) {
			return map[string]any{"id": in.ID, "node_id": "MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9u" + strconv.FormatInt(in.ID, 10)}
		}
	}
	return nil
}

// PushPayload is a push of sha to branch of fullName by sender, in the shape of GitHub's
// push example (push_branch.json).
func (s *Server) PushPayload(fullName, branch, sha, sender string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.repoOf(fullName)
	if err != nil {
		panic(err)
	}
	m := example("push_branch.json")
	m["ref"], m["after"], m["before"] = "refs/heads/"+branch, sha, strings.Repeat("0", 40)
	m["repository"] = merge(m["repository"].(map[string]any), s.repoJSON(r))
	m["sender"] = merge(m["sender"].(map[string]any), s.accountJSON(sender))
	m["pusher"] = map[string]any{"name": sender, "email": sender + "@users.noreply.github.com"}
	m["installation"] = s.installationOf(fullName)
	if hc, ok := m["head_commit"].(map[string]any); ok {
		hc["id"] = sha
		m["commits"] = []any{hc}
	}
	return marshal(m)
}

// PullRequestPayload is an action (opened, synchronize, reopened, closed, …) of pull
// request number of fullName (made with SetPull) by sender, in the shape of GitHub's
// pull_request example delivered through an installation
// (pull_request_opened_installation.json).
func (s *Server) PullRequestPayload(fullName string, number int, action, sender string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.repoOf(fullName)
	if err != nil {
		panic(err)
	}
	p := r.pulls[number]
	m := example("pull_request_opened_installation.json")
	m["action"], m["number"] = action, number
	m["pull_request"] = merge(m["pull_request"].(map[string]any), s.pullJSON(r, p))
	m["repository"] = merge(m["repository"].(map[string]any), s.repoJSON(r))
	m["sender"] = merge(m["sender"].(map[string]any), s.accountJSON(sender))
	m["installation"] = s.installationOf(fullName)
	if action == "synchronize" {
		m["before"], m["after"] = strings.Repeat("1", 40), p.HeadSHA
	}
	return marshal(m)
}

// CommentPayload is the creation of comment c (made with AddComment) on a pull request, in
// the shape of GitHub's issue_comment example (issue_comment_created.json) with the
// issue's pull_request field, which a pull request's comments carry.
func (s *Server) CommentPayload(c Comment) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.repoOf(c.Repo)
	if err != nil {
		panic(err)
	}
	m := example("issue_comment_created.json")
	issue := m["issue"].(map[string]any)
	issue["number"] = c.Number
	issue["pull_request"] = map[string]any{"url": s.API + "repos/" + c.Repo + "/pulls/" + strconv.Itoa(c.Number), "html_url": s.URL + "/" + c.Repo + "/pull/" + strconv.Itoa(c.Number)}
	m["comment"] = merge(m["comment"].(map[string]any), s.commentJSON(&c))
	m["repository"] = merge(m["repository"].(map[string]any), s.repoJSON(r))
	m["sender"] = merge(m["sender"].(map[string]any), s.accountJSON(c.Author))
	m["installation"] = s.installationOf(c.Repo)
	return marshal(m)
}

// InstallationPayload is an installation event (created, deleted, suspend, unsuspend) of
// installation id by sender, in the shape of GitHub's examples (installation_created.json,
// …).
func (s *Server) InstallationPayload(id int64, action, sender string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	in := s.st.installs[id]
	name := map[string]string{"created": "installation_created.json", "deleted": "installation_deleted.json", "suspend": "installation_suspend.json", "unsuspend": "installation_unsuspend.json"}[action]
	if name == "" {
		name = "installation_new_permissions_accepted.json"
	}
	m := example(name)
	m["action"] = action
	m["installation"] = merge(m["installation"].(map[string]any), s.installationJSON(in))
	if action == "suspend" {
		m["installation"].(map[string]any)["suspended_at"] = time.Now().UTC().Format(time.RFC3339)
	}
	m["sender"] = merge(m["sender"].(map[string]any), s.accountJSON(sender))
	if _, ok := m["repositories"]; ok {
		m["repositories"] = s.listedRepos(in)
	}
	return marshal(m)
}

// listedRepos are the repositories of an installation as its events list them.
func (s *Server) listedRepos(in *installation) []any {
	out := []any{}
	for _, r := range s.st.repos {
		if s.st.sees(caller{installation: in}, r) {
			out = append(out, map[string]any{"id": r.ID, "node_id": "R_" + strconv.FormatInt(r.ID, 10), "name": r.Name, "full_name": r.Owner + "/" + r.Name, "private": r.Private})
		}
	}
	return out
}

// ReposPayload is an installation_repositories event: the repositories (names of the
// installation's account) added to or removed from installation id by sender, whose
// selection the fake changes first.
func (s *Server) ReposPayload(id int64, action, sender string, names ...string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	in := s.st.installs[id]
	in.Selection = "selected"
	list := []any{}
	for _, n := range names {
		in.Selected[strings.ToLower(n)] = action == "added"
		if r := s.st.repos[strings.ToLower(in.Account+"/"+n)]; r != nil {
			list = append(list, map[string]any{"id": r.ID, "node_id": "R_" + strconv.FormatInt(r.ID, 10), "name": r.Name, "full_name": r.Owner + "/" + r.Name, "private": r.Private})
		}
	}
	name := "installation_repositories_added.json"
	if action == "removed" {
		name = "installation_repositories_removed.json"
	}
	m := example(name)
	m["action"], m["repository_selection"] = action, in.Selection
	m["installation"] = merge(m["installation"].(map[string]any), s.installationJSON(in))
	m["repositories_added"], m["repositories_removed"] = []any{}, []any{}
	m["repositories_"+action] = list
	m["sender"] = merge(m["sender"].(map[string]any), s.accountJSON(sender))
	return marshal(m)
}

func marshal(m map[string]any) []byte {
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

// Deliver posts a delivery of event to url as GitHub's App webhook does: its headers,
// X-Hub-Signature-256 (and the legacy SHA-1 one) with the App's webhook secret. It
// returns the answer's status and body.
func (s *Server) Deliver(url, event string, body []byte) (int, string, error) {
	return s.DeliverSigned(url, event, body, s.App.WebhookSecret)
}

// DeliverSigned is Deliver with another secret ("" for no signature at all).
func (s *Server) DeliverSigned(url, event string, body []byte, secret string) (int, string, error) {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	h := req.Header
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", "GitHub-Hookshot/044aadd")
	h.Set("X-GitHub-Event", event)
	h.Set("X-GitHub-Delivery", deliveryID())
	h.Set("X-GitHub-Hook-ID", "292430182")
	h.Set("X-GitHub-Hook-Installation-Target-Type", "integration")
	h.Set("X-GitHub-Hook-Installation-Target-ID", strconv.FormatInt(s.App.ID, 10))
	if secret != "" {
		h.Set("X-Hub-Signature-256", "sha256="+sign(sha256.New, secret, body))
		h.Set("X-Hub-Signature", "sha1="+sign(sha1.New, secret, body))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, strings.TrimSpace(string(answer)), nil
}

func sign(h func() hash.Hash, secret string, body []byte) string {
	mac := hmac.New(h, []byte(secret))
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil))
}

// deliveryID is a GUID, as GitHub's X-GitHub-Delivery is.
func deliveryID() string {
	b := random(16)
	return fmt.Sprintf("%s-%s-%s-%s-%s", b[:8], b[8:12], b[12:16], b[16:20], b[20:])
}

package history

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"code.gitea.io/sdk/gitea"
	nomad "github.com/hashicorp/nomad/api"

	"github.com/albatros-ci/albatros/testenv"
)

// Every link the bot wrote still opens its build after Nomad has collected it, masked, on
// both stores, and after the bot restarts: the status link, /build, the pull request's
// comment (its earlier heads), the history page and the badge.
func TestLinksOutliveNomad(t *testing.T) {
	for _, store := range []string{"dir", "s3"} {
		t.Run(store, func(t *testing.T) {
			prefix := testenv.UniqueName("hist-"+store) + "/"
			archiveURL := "file://" + t.TempDir()
			if store == "s3" {
				archiveURL = env.S3(t).URL(strings.TrimSuffix(prefix, "/"))
			}
			b := startBot(t, prefix, archiveURL)
			p := newProject(t, prefix, b)

			mainSHA := p.push("main", "", "first")
			mainLink := p.waitStatus(mainSHA, gitea.StatusSuccess).TargetURL
			prSHA := p.push("feature", "main", "pull request")
			pr := p.g.CreatePullRequest(t, p.owner, p.repo, "feature", "main", "a change")
			p.waitStatus(prSHA, gitea.StatusSuccess)
			// The pull request's own build (its row in the comment; the commit's status is
			// the push's to the branch, its newer build).
			prLink := logLink(t, p.comment(pr, "✅ success"))

			_, mainJob := jobOf(t, mainLink)
			_, prJob := jobOf(t, prLink)
			collect(t, mainJob, prJob)

			check := func(base string) {
				t.Helper()
				link := strings.Replace(mainLink, strings.SplitN(mainLink, "/logs/", 2)[0], base, 1)
				code, page := get(t, link)
				if code != 200 || !strings.Contains(page, "hello-archive token=[***]") || strings.Contains(page, p.secret) || !strings.Contains(page, "success") {
					t.Fatalf("the status link once Nomad collected the build: %d\n%s", code, page)
				}
				code, plain := get(t, plainURL(t, base, mainLink))
				if code != 200 || !archivedOutput(plain, p.secret) || !strings.Contains(plain, mainSHA) {
					t.Fatalf("/build: %d %q", code, plain)
				}
				if code, _ := get(t, plainURL(t, base, mainLink)+"&log=stderr"); code != 200 {
					t.Fatalf("/build stderr: %d", code)
				}
				code, history := get(t, base+"/builds/"+p.repo.Owner+"/"+p.repo.Name)
				ns, job := jobOf(t, mainLink)
				if code != 200 || !strings.Contains(history, mainSHA[:10]) || !strings.Contains(history, prSHA[:10]) || !strings.Contains(history, "/logs/"+ns+"/"+job) {
					t.Fatalf("history page: %d\n%s", code, history)
				}
				if _, filtered := get(t, base+"/builds/"+p.repo.Owner+"/"+p.repo.Name+"?"+url.Values{"pr": {"1"}}.Encode()); strings.Contains(filtered, mainSHA[:10]) {
					t.Errorf("the pull request's history lists the push to main")
				}
				if code, svg := get(t, base+"/badge/"+p.repo.Owner+"/"+p.repo.Name+".svg?branch=main"); code != 200 || !strings.Contains(svg, "passing") {
					t.Fatalf("badge: %d %s", code, svg)
				}
			}
			check(b.URL)

			// A new head re-renders the comment: the collected build stays, under the
			// earlier commits, with its link.
			next := p.push("feature", "", "second")
			p.waitStatus(next, gitea.StatusSuccess)
			body := p.comment(pr, "Earlier commits", prLink, next[:7])
			if !strings.Contains(body, "/builds/"+p.repo.Owner+"/"+p.repo.Name+"?pr=") {
				t.Errorf("the comment does not link the pull request's history:\n%s", body)
			}

			// Restarted (the same URL: the links name it), the bot still serves it.
			b.Stop()
			b2 := startBotAt(t, prefix, archiveURL, b.URL)
			check(b2.URL)
		})
	}
}

// Two bots on one S3 store: either serves every build, and each build is archived once.
func TestTwoBotsShareTheArchive(t *testing.T) {
	prefix := testenv.UniqueName("hist-two") + "/"
	archiveURL := env.S3(t).URL(strings.TrimSuffix(prefix, "/"))
	a, b := startBot(t, prefix, archiveURL), startBot(t, prefix, archiveURL)
	p := newProject(t, prefix, a, b) // every delivery reaches both
	var links []string
	for i := range 3 {
		sha := p.push("main", "", "commit "+string(rune('a'+i)))
		links = append(links, p.waitStatus(sha, gitea.StatusSuccess).TargetURL)
	}
	var jobs []string
	for _, l := range links {
		_, j := jobOf(t, l)
		jobs = append(jobs, j)
	}
	collect(t, jobs...)
	for i, l := range links {
		for _, bot := range []*testenv.Bot{a, b} {
			if code, plain := get(t, plainURL(t, bot.URL, l)); code != 200 || !archivedOutput(plain, p.secret) {
				t.Errorf("build %d on %s: %d %q", i, bot.URL, code, plain)
			}
		}
		if n := archivedCount(jobs[i], a, b); n != 1 {
			t.Errorf("build %d archived %d times by the two bots, want once", i, n)
		}
	}
}

// The store down when a build ends: its final status waits (pending, not lost), and is
// written once the store is back, with the build archived once.
func TestTheStoreDownHoldsTheResult(t *testing.T) {
	prefix := testenv.UniqueName("hist-down") + "/"
	s3 := env.S3(t)
	b := startBot(t, prefix, s3.URL(strings.TrimSuffix(prefix, "/")))
	p := newProject(t, prefix, b)
	s3.StopServer()
	restarted := false
	defer func() {
		if !restarted {
			_ = s3.StartServer(t.Context())
		}
	}()
	sha := p.push("main", "", "while the store is down")
	pending := p.waitStatus(sha, gitea.StatusPending)
	_, job := jobOf(t, pending.TargetURL)
	waitDead(t, job)
	time.Sleep(3 * time.Second) // the report retries meanwhile
	if st := p.g.Statuses(t, p.repo, sha); st[0].State != gitea.StatusPending {
		t.Fatalf("a final status was written while its build could not be archived: %+v", st[0])
	}
	if err := s3.StartServer(t.Context()); err != nil {
		t.Fatal(err)
	}
	restarted = true
	final := p.waitStatus(sha, gitea.StatusSuccess)
	if final.TargetURL != pending.TargetURL {
		t.Errorf("final status links %s, the pending one %s", final.TargetURL, pending.TargetURL)
	}
	successes := 0
	for _, s := range p.g.Statuses(t, p.repo, sha) {
		if s.State == gitea.StatusSuccess {
			successes++
		}
	}
	if successes != 1 {
		t.Errorf("%d success statuses, want 1", successes)
	}
	collect(t, job)
	if code, plain := get(t, plainURL(t, b.URL, pending.TargetURL)); code != 200 || !archivedOutput(plain, p.secret) {
		t.Errorf("the build once collected: %d %q", code, plain)
	}
	if n := archivedCount(job, b); n != 1 {
		t.Errorf("archived %d times, want once", n)
	}
}

// waitDead waits until Nomad says the job is dead.
func waitDead(t *testing.T, job string) {
	t.Helper()
	c := env.Nomad(t).Client(t)
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		j, _, err := c.Jobs().Info(job, &nomad.QueryOptions{Namespace: "ci"})
		if err == nil && j.Status != nil && *j.Status == "dead" {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("build %s never ended", job)
}

// logLink is the first log link of a comment.
func logLink(t *testing.T, body string) string {
	t.Helper()
	i := strings.Index(body, "[log](")
	if i < 0 {
		t.Fatalf("no log link in the comment:\n%s", body)
	}
	rest := body[i+len("[log]("):]
	return rest[:strings.Index(rest, ")")]
}

// archivedOutput reports whether a plain log is the script's, masked.
func archivedOutput(log, secret string) bool {
	return strings.Contains(log, "hello-archive token=[***]\n") && strings.Contains(log, "on stderr\n") && !strings.Contains(log, secret)
}

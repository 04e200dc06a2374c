package templates_test

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/albatros-ci/albatros/templates"
)

// page is a log page as the server fills it for the stdout stream of a branch build.
func page() templates.LogPage {
	return templates.LogPage{
		Repo:        "lx/widget",
		RepoURL:     "https://git.example.com/lx/widget",
		Commit:      "3f2c9d1e8b7a6f5e4d3c2b1a09f8e7d6c5b4a392",
		ShortCommit: "3f2c9d1e8b",
		Branch:      "main",
		Flavor:      "default",
		Namespace:   "albatros",
		JobID:       "builder/dispatch-1760000000-3f2c9d1e",
		Submitted:   time.Date(2025, 10, 9, 14, 30, 5, 0, time.FixedZone("CEST", 2*60*60)),
		Streams: []templates.Stream{
			{Name: "stdout", Page: "/logs/albatros/builder/dispatch-1760000000-3f2c9d1e", Current: true},
			{Name: "stderr", Page: "/logs/albatros/builder/dispatch-1760000000-3f2c9d1e?log=stderr"},
		},
		Raw: "/build?job=builder%2Fdispatch-1760000000-3f2c9d1e&log=stdout&namespace=albatros",
	}
}

func head(t *testing.T, p templates.LogPage) string {
	t.Helper()
	var b strings.Builder
	if err := templates.LogHead(&b, p); err != nil {
		t.Fatalf("LogHead: %v", err)
	}
	return b.String()
}

func foot(t *testing.T, r templates.LogResult) string {
	t.Helper()
	var b strings.Builder
	if err := templates.LogFoot(&b, r); err != nil {
		t.Fatalf("LogFoot: %v", err)
	}
	return b.String()
}

func TestLogHead(t *testing.T) {
	tests := []struct {
		name    string
		change  func(*templates.LogPage)
		want    []string
		notWant []string
	}{
		{
			name: "branch build",
			want: []string{
				"<title>lx/widget 3f2c9d1e8b · default · Albatros</title>",
				`<h1><a href="https://git.example.com/lx/widget">lx/widget</a></h1>`,
				"<dt>commit</dt><dd>3f2c9d1e8b7a6f5e4d3c2b1a09f8e7d6c5b4a392</dd>",
				"<dt>branch</dt><dd>main</dd>",
				"<dt>flavor</dt><dd>default</dd>",
				"<dt>nomad job</dt><dd>albatros/builder/dispatch-1760000000-3f2c9d1e</dd>",
				"<dt>queued</dt><dd>2025-10-09 12:30:05 UTC</dd>",
			},
			notWant: []string{"<dt>tag</dt>", "pull request"},
		},
		{
			name:    "tag instead of branch",
			change:  func(p *templates.LogPage) { p.Tag = "v1.2.3" },
			want:    []string{"<dt>tag</dt><dd>v1.2.3</dd>"},
			notWant: []string{"<dt>branch</dt>", "<dd>main</dd>"},
		},
		{
			name:   "pull request",
			change: func(p *templates.LogPage) { p.PR = "42" },
			want:   []string{"<dt>pull request</dt><dd>#42</dd>", "<dt>branch</dt><dd>main</dd>"},
		},
		{
			name:    "neither branch nor tag",
			change:  func(p *templates.LogPage) { p.Branch = "" },
			notWant: []string{"<dt>branch</dt>", "<dt>tag</dt>"},
		},
		{
			name:    "not yet queued",
			change:  func(p *templates.LogPage) { p.Submitted = time.Time{} },
			notWant: []string{"queued"},
		},
		{
			name: "unknown forge: no link to the repository",
			change: func(p *templates.LogPage) {
				p.Repo, p.RepoURL = "ssh://git@example.com/lx/widget", ""
			},
			want:    []string{"<h1>ssh://git@example.com/lx/widget</h1>"},
			notWant: []string{"<h1><a"},
		},
		{
			name: "current stream in bold, the other linked",
			want: []string{
				"<nav><strong>stdout</strong> " +
					`<a href="/logs/albatros/builder/dispatch-1760000000-3f2c9d1e?log=stderr">stderr</a> ` +
					`<a href="/build?job=builder%2Fdispatch-1760000000-3f2c9d1e&amp;log=stdout&amp;namespace=albatros">plain text</a></nav>`,
			},
			notWant: []string{">stdout</a>", "<strong>stderr"},
		},
		{
			name: "stderr is the current stream",
			change: func(p *templates.LogPage) {
				p.Streams[0].Current, p.Streams[1].Current = false, true
			},
			want: []string{
				`<a href="/logs/albatros/builder/dispatch-1760000000-3f2c9d1e">stdout</a> <strong>stderr</strong>`,
			},
		},
		{
			name: "hostile branch",
			change: func(p *templates.LogPage) {
				p.Branch = "<script>alert(1)</script>"
			},
			want:    []string{"<dd>&lt;script&gt;alert(1)&lt;/script&gt;</dd>"},
			notWant: []string{"<script>"},
		},
		{
			name: "hostile tag, PR and flavor",
			change: func(p *templates.LogPage) {
				p.Tag = `v1"><img src=x onerror=alert(1)>`
				p.PR = "<b>1</b>"
				p.Flavor = "</title><script>x</script>"
			},
			want: []string{
				"<dd>v1&#34;&gt;&lt;img src=x onerror=alert(1)&gt;</dd>",
				"<dd>#&lt;b&gt;1&lt;/b&gt;</dd>",
				"&lt;/title&gt;&lt;script&gt;x&lt;/script&gt;",
			},
			notWant: []string{"<img", "<b>1", "<script>"},
		},
		{
			name: "hostile URLs",
			change: func(p *templates.LogPage) {
				p.RepoURL = "javascript:alert(1)"
				p.Streams[1].Page = `javascript:alert(document.cookie)`
				p.Raw = `" onclick="alert(1)`
			},
			want: []string{
				`<h1><a href="#ZgotmplZ">lx/widget</a></h1>`,
				`<a href="#ZgotmplZ">stderr</a>`,
				`<a href="%22%20onclick=%22alert%281%29">plain text</a>`,
			},
			notWant: []string{"javascript:", `" onclick`},
		},
		{
			name: "hostile stream name",
			change: func(p *templates.LogPage) {
				p.Streams[0].Name = "<i>out</i>"
				p.Streams[1].Name = "<i>err</i>"
			},
			want:    []string{"<strong>&lt;i&gt;out&lt;/i&gt;</strong>", ">&lt;i&gt;err&lt;/i&gt;</a>"},
			notWant: []string{"<i>"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := page()
			if tt.change != nil {
				tt.change(&p)
			}
			got := head(t, p)
			for _, s := range tt.want {
				if !strings.Contains(got, s) {
					t.Errorf("head does not contain %q:\n%s", s, body(got))
				}
			}
			for _, s := range tt.notWant {
				if strings.Contains(got, s) {
					t.Errorf("head contains %q:\n%s", s, body(got))
				}
			}
			if !strings.HasSuffix(got, `<pre id="log">`) {
				t.Errorf("head does not end by opening the log: %q", got[max(0, len(got)-40):])
			}
		})
	}
}

// body is the part of a head after the style sheet, which is all a failure needs to show.
func body(head string) string {
	if _, after, ok := strings.Cut(head, "</head>"); ok {
		return after
	}
	return head
}

func TestLogFoot(t *testing.T) {
	tests := []struct {
		result templates.LogResult
		want   string
	}{
		{
			templates.LogResult{Result: "success", Description: "the build succeeded"},
			`<footer class="success" id="result">success: the build succeeded</footer>`,
		},
		{
			templates.LogResult{Result: "failure", Description: ".albatros exited with status 101"},
			`<footer class="failure" id="result">failure: .albatros exited with status 101</footer>`,
		},
		{
			templates.LogResult{Result: "error", Description: "the log could not be read to its end"},
			`<footer class="error" id="result">error: the log could not be read to its end</footer>`,
		},
		{
			templates.LogResult{Result: "pending", Description: ""},
			`<footer class="pending" id="result">pending: </footer>`,
		},
		{
			templates.LogResult{Result: `x" onmouseover="alert(1)`, Description: "<script>alert(1)</script> & more"},
			`<footer class="x&#34; onmouseover=&#34;alert(1)" id="result">x&#34; onmouseover=&#34;alert(1): &lt;script&gt;alert(1)&lt;/script&gt; &amp; more</footer>`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.result.Result, func(t *testing.T) {
			got := foot(t, tt.result)
			want := "</pre>\n" + tt.want + "\n</body>\n</html>\n"
			if got != want {
				t.Errorf("LogFoot =\n%s\nwant\n%s", got, want)
			}
		})
	}
}

// TestLogPageGolden renders a whole page as the server streams it: head, the build's
// output through the ANSI converter, foot.
func TestLogPageGolden(t *testing.T) {
	log, err := os.ReadFile("testdata/build.log")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := templates.LogHead(&out, page()); err != nil {
		t.Fatalf("LogHead: %v", err)
	}
	a := templates.NewANSI(&out)
	if _, err := a.Write(log); err != nil {
		t.Fatalf("ANSI: %v", err)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("ANSI Close: %v", err)
	}
	if err := templates.LogFoot(&out, templates.LogResult{Result: "failure", Description: ".albatros exited with status 101"}); err != nil {
		t.Fatalf("LogFoot: %v", err)
	}
	checkGolden(t, "page.html.golden", out.Bytes())
}

// Command dispatch measures what a build's dispatch costs through the bot as a builder's
// dispatched children pile up in Nomad (they stay until Nomad's job GC, 4 h by default):
// Nomad checks an idempotency token by scanning every child of the parameterized job, so a
// bot that relied on it alone would slow down at a busy forge. The bot claims each build key
// in Consul first (registry.Claim), which finds a redelivered build without asking Nomad.
//
// On a Consul and a Nomad of its own (loopback), at each number of retained children
// (-children, default 0 and 5000), it times -n dispatches each of:
//
//   - bare, no token: Nomad's dispatch API without an idempotency token (what Nomad's own
//     work costs as its state grows, without the token's scan);
//   - bare, new: the same with a fresh idempotency token (the baseline);
//   - bare, again: the same with a token already used (a redelivery, as Nomad sees it);
//   - bot, new: pipeline.DispatchOnce with a fresh build key (claim, dispatch, settle);
//   - bot, again: pipeline.DispatchOnce with a key already dispatched;
//   - bot, list a repository's 20 builds: orchestrator.Recent of another repository, which
//     has 20 builds of the same builder (what a pull request's comment lists).
//
// The bare dispatches ask for uncompressed answers, as the bot does (benchkit.Uncompressed).
// The builder's group has a count of 0 (benchkit.Builder, unplaced): a child costs Nomad its
// job and an evaluation that places nothing, then is dead, as a busy cluster's children
// mostly are between two job GCs. It prints a Markdown report.
//
//	go run ./bench/dispatch -n 200 -children 0,5000
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	nomad "github.com/hashicorp/nomad/api"

	"github.com/albatros-ci/albatros/bench/benchkit"
	"github.com/albatros-ci/albatros/orchestrator"
	"github.com/albatros-ci/albatros/pipeline"
	"github.com/albatros-ci/albatros/registry"
	"github.com/albatros-ci/albatros/testenv"
)

func main() {
	n := flag.Int("n", 200, "dispatches timed per kind and number of children")
	children := flag.String("children", "0,5000", "numbers of retained children to measure at, ascending")
	flag.Parse()
	var levels []int
	for _, s := range strings.Split(*children, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || v < 0 || (len(levels) > 0 && v < levels[len(levels)-1]) {
			fmt.Fprintf(os.Stderr, "dispatch: -children %q: ascending numbers, please\n", *children)
			os.Exit(2)
		}
		levels = append(levels, v)
	}
	benchkit.Main("dispatch", func(p *testenv.Program) error { return run(p, *n, levels) })
}

const ns, job = "ci", "bench-builder"

// kinds are what is timed, in report order.
const listing = "bot, list a repository's 20 builds"

var kinds = []string{"bare, no token", "bare, new", "bare, again", "bot, new", "bot, again", listing}

func run(p *testenv.Program, n int, levels []int) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	_, nm, err := benchkit.Servers(ctx, p, true, true)
	if err != nil {
		return err
	}
	nc, err := benchkit.Uncompressed(nm.Addr)
	if err != nil {
		return err
	}
	if err := benchkit.Builder(nc, ns, job, map[string]any{"command": "true"}, true, nil); err != nil {
		return err
	}
	reg, err := registry.New("bench/", nil)
	if err != nil {
		return err
	}
	o, err := orchestrator.New(reg)
	if err != nil {
		return err
	}
	pipe := pipeline.New(pipeline.Config{Builds: o, Claims: reg})
	builder := orchestrator.Builder{Namespace: ns, Job: job}
	meta := map[string]string{"REPO_URL": "https://git.example.com/bench/app.git", "COMMIT": strings.Repeat("a", 40), "BRANCH": "main", "FLAVOR": "default"}
	bare := func(token string) error {
		w := (&nomad.WriteOptions{Namespace: ns, IdempotencyToken: token}).WithContext(ctx)
		_, _, err := nc.Jobs().DispatchOpts(&nomad.DispatchOptions{JobID: job, Meta: meta, IdPrefixTemplate: "albatros"}, w)
		return err
	}
	bot := func(token string) error {
		_, err := pipe.DispatchOnce(ctx, orchestrator.DispatchRequest{Builder: builder, Meta: meta, IdempotencyToken: token})
		return err
	}

	// Another repository's builds, which a pull request's comment lists (Recent) whatever
	// the builder holds of other repositories'.
	other := maps.Clone(meta)
	other["REPO_URL"] = "https://git.example.com/bench/other.git"
	for i := range 20 {
		if _, err := pipe.DispatchOnce(ctx, orchestrator.DispatchRequest{Builder: builder, Meta: other, IdempotencyToken: fmt.Sprintf("albatros-other-%d", i)}); err != nil {
			return err
		}
	}
	list := func() error {
		got, err := o.Recent(ctx, other["REPO_URL"], 500)
		if err == nil && len(got) != 20 {
			err = fmt.Errorf("listed %d builds of %s, want 20", len(got), other["REPO_URL"])
		}
		return err
	}

	seq := 0
	fresh := func() string { seq++; return fmt.Sprintf("albatros-bench-%08d", seq) }
	retained := 0
	results := map[int]map[string][]time.Duration{}
	for _, level := range levels {
		// Pile up children (without tokens, as fast as Nomad takes them).
		if level > retained {
			fmt.Fprintf(os.Stderr, "dispatch: adding %d children\n", level-retained)
		}
		for ; retained < level; retained++ {
			if err := bare(""); err != nil {
				return err
			}
		}
		if retained != level {
			return fmt.Errorf("level %d: %d children retained already (-n is too large for these -children)", level, retained)
		}
		fmt.Fprintf(os.Stderr, "dispatch: timing at %d retained children\n", level)
		// Each kind's "again" replays tokens of its own "new" run.
		timed := map[string][]time.Duration{}
		var bareTokens, botTokens []string
		for i := range 3 * n { // interleaved: no token, bare, bot, no token, bare, bot …
			token := fresh()
			f, kind := bare, "bare, new"
			switch i % 3 {
			case 0:
				token, kind = "", "bare, no token"
			case 1:
				bareTokens = append(bareTokens, token)
			case 2:
				f, kind = bot, "bot, new"
				botTokens = append(botTokens, token)
			}
			t0 := time.Now()
			if err := f(token); err != nil {
				return err
			}
			timed[kind] = append(timed[kind], time.Since(t0))
		}
		retained += 3 * n
		for i := range 2 * n {
			f, kind, token := bare, "bare, again", bareTokens[i/2]
			if i%2 == 1 {
				f, kind, token = bot, "bot, again", botTokens[i/2]
			}
			t0 := time.Now()
			if err := f(token); err != nil {
				return err
			}
			timed[kind] = append(timed[kind], time.Since(t0))
		}
		for range max(n/10, 5) {
			t0 := time.Now()
			if err := list(); err != nil {
				return err
			}
			timed[listing] = append(timed[listing], time.Since(t0))
		}
		results[level] = timed
		fmt.Fprintf(os.Stderr, "dispatch: %d retained children (%d after this level)\n", level, retained)
		for _, k := range kinds {
			fmt.Fprintf(os.Stderr, "  %-12s median %s\n", k, pct(timed[k], 50))
		}
	}
	report(os.Stdout, results, levels, n)
	return nil
}

// pct is the p-th percentile of ds, in milliseconds with one decimal.
func pct(ds []time.Duration, p int) string {
	s := slices.Clone(ds)
	slices.Sort(s)
	return fmt.Sprintf("%.1f ms", float64(s[(len(s)-1)*p/100].Microseconds())/1000)
}

func ms(ds []time.Duration, p int) float64 {
	s := slices.Clone(ds)
	slices.Sort(s)
	return float64(s[(len(s)-1)*p/100].Microseconds()) / 1000
}

func report(w io.Writer, results map[int]map[string][]time.Duration, levels []int, n int) {
	fmt.Fprintf(w, "Result, %s, %s/%s, %d CPUs, %s; %d dispatches per kind and level, interleaved:\n\n",
		time.Now().UTC().Format("2006-01-02"), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version(), n)
	fmt.Fprintln(w, "| retained children | dispatch | median | p95 |")
	fmt.Fprintln(w, "|---|---|---|---|")
	for _, level := range levels {
		for _, k := range kinds {
			fmt.Fprintf(w, "| %d | %s | %s | %s |\n", level, k, pct(results[level][k], 50), pct(results[level][k], 95))
		}
	}
	fmt.Fprintln(w)
	for _, level := range levels {
		r := results[level]
		base := ms(r["bare, new"], 50)
		fmt.Fprintf(w, "At %d children (median, against a bare new dispatch at the same level): bot new %.2f×, bot again %.2f×, bare again %.2f×.\n",
			level, ms(r["bot, new"], 50)/base, ms(r["bot, again"], 50)/base, ms(r["bare, again"], 50)/base)
	}
	if len(levels) > 1 {
		first, last := results[levels[0]], results[levels[len(levels)-1]]
		fmt.Fprintf(w, "\nFrom %d to %d children (median): ", levels[0], levels[len(levels)-1])
		var parts []string
		for _, k := range kinds {
			parts = append(parts, fmt.Sprintf("%s %.2f×", k, ms(last[k], 50)/ms(first[k], 50)))
		}
		fmt.Fprintln(w, strings.Join(parts, ", ")+".")
	}
}

package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/albatros-ci/albatros/orchestrator"
	"github.com/albatros-ci/albatros/pipeline"
	"github.com/albatros-ci/albatros/registry"
	"github.com/albatros-ci/albatros/schedule"
)

// scheduleRow is one of a repository's schedules as its page shows it.
type scheduleRow struct {
	Name, Line, Branch, Flavor string
	// Next is its next slot; Last the last one built, Log that build's log page, Result
	// how its last build reported went.
	Next, Last, Log, Result string
	// Problem says why the last slot was not built; Gone since when its branch is gone.
	Problem, Gone string
	// Issue, when set, is the open issue its failures opened.
	Issue string
}

// scheduleRows reads how the schedules of the repository at cloneURL went.
func (wb *Web) scheduleRows(ctx context.Context, cloneURL, repoWeb string, ss []registry.Schedule) []scheduleRow {
	now := time.Now()
	var rows []scheduleRow
	for _, sc := range ss {
		row := scheduleRow{Name: sc.Name, Line: schedule.Format(sc), Branch: sc.Branch, Flavor: sc.Flavor}
		if row.Flavor == "" {
			row.Flavor = "(the first)"
		}
		if next := schedule.Next(sc, now); !next.IsZero() {
			row.Next = next.UTC().Format("2006-01-02 15:04 MST")
		}
		if wb.cfg.Schedules != nil {
			st, err := wb.cfg.Schedules.ScheduleState(ctx, cloneURL, sc.Name)
			if err != nil {
				wb.cfg.Log.Warn("schedule state", "repo", cloneURL, "schedule", sc.Name, "err", err)
				row.Problem = "its state could not be read from Consul"
			} else {
				if !st.Slot.IsZero() {
					row.Last = st.Slot.UTC().Format("2006-01-02 15:04 MST")
				}
				if st.Job != "" {
					row.Log = wb.cfg.BaseURL + orchestrator.LogPath(st.Namespace, st.Job)
				}
				row.Result, row.Problem = st.Result, st.Problem
				if !st.Gone.IsZero() {
					row.Gone = st.Gone.UTC().Format("2006-01-02 15:04 MST")
				}
				if st.Failing && st.Issue != 0 && repoWeb != "" {
					row.Issue = fmt.Sprintf("%s/issues/%d", repoWeb, st.Issue)
				}
			}
		}
		rows = append(rows, row)
	}
	return rows
}

// formatLines writes schedules or parameters one per line, for the settings form.
func formatSchedules(ss []registry.Schedule) string {
	var lines []string
	for _, s := range ss {
		lines = append(lines, schedule.Format(s))
	}
	return strings.Join(lines, "\n")
}

func formatParams(ps []registry.Param) string {
	var lines []string
	for _, p := range ps {
		lines = append(lines, schedule.FormatParam(p))
	}
	return strings.Join(lines, "\n")
}

// readBuildsNoPushStarts reads a repository's schedules and run parameters from the
// settings form into s, checked: the schedules' flavors (among the repository's flavors),
// and the parameters against the builder the repository builds with (it must declare them
// optional). It returns a problem to show, "" when they are fine.
func (wb *Web) readBuildsNoPushStarts(r *http.Request, s *registry.Settings, builder orchestrator.Builder, flavors []string) string {
	schedules, err := schedule.ParseLines(r.PostFormValue("schedules"), s.Schedules, time.Now())
	if err != nil {
		return "Not saved: schedules, " + err.Error() + "."
	}
	for _, sc := range schedules {
		if sc.Flavor != "" && !pipeline.ValidFlavor(sc.Flavor) {
			return fmt.Sprintf("Not saved: schedule %s: %q is not a flavor name.", sc.Name, sc.Flavor)
		}
		if sc.Flavor != "" && !slices.Contains(flavors, sc.Flavor) {
			return fmt.Sprintf("Not saved: schedule %s: flavor %q is not one of the repository's (%s).", sc.Name, sc.Flavor, strings.Join(flavors, ", "))
		}
	}
	params, err := schedule.ParseParams(r.PostFormValue("params"))
	if err != nil {
		return "Not saved: run parameters, " + err.Error() + "."
	}
	if len(params) > 0 {
		var keys []string
		for _, p := range params {
			keys = append(keys, p.Name)
		}
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		err := wb.cfg.Builds.CheckMeta(ctx, builder, keys)
		cancel()
		switch {
		case errors.Is(err, orchestrator.ErrContract):
			return "Not saved: the run parameters are refused: " + err.Error() + "."
		case errors.Is(err, orchestrator.ErrNotFound):
			return fmt.Sprintf("Not saved: there is no builder job %s in Nomad to take the run parameters.", builder)
		case err != nil:
			wb.cfg.Log.Warn("check builder meta", "builder", builder.String(), "err", err)
			return "Not saved: Nomad could not be asked whether the builder takes the run parameters."
		}
	}
	s.Schedules, s.Params = schedules, params
	return ""
}

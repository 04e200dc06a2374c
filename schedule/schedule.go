// Package schedule is what a repository's settings say of the builds no push starts: its
// schedules (a cron expression in a named time zone, a branch, a flavor) and the parameters
// of the runs asked on the bot's page. It checks them as the settings page and a
// hand-written entry give them, reads and writes their one-line form, and tells when a
// schedule's slots fall. It does no I/O: the pipeline builds the slots, its leader runs
// them, the pages show them.
package schedule

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/hashicorp/cronexpr"

	"github.com/albatros-ci/albatros/forge"
	"github.com/albatros-ci/albatros/registry"
)

// CatchUp bounds how late a slot is built: a slot missed while no bot ran is built once
// one is back, if it is the schedule's last one and at most this old. It stays well within
// the day that the build keys' claims are kept, which make a slot built once.
const CatchUp = 12 * time.Hour

// MaxSchedules is how many schedules a repository may have.
const MaxSchedules = 20

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,39}$`)

// Check checks a schedule: its name (lower-case letters, digits and '-'), its five cron
// fields, its time zone (an IANA name, "UTC" included), and its branch as git would take
// it. Its flavor is the pipeline's to check.
func Check(s registry.Schedule) error {
	if !nameRE.MatchString(s.Name) {
		return fmt.Errorf("schedule %q: a schedule's name is lower-case letters, digits and '-', up to 40", s.Name)
	}
	if _, _, err := parse(s); err != nil {
		return fmt.Errorf("schedule %s: %w", s.Name, err)
	}
	if err := forge.CheckRefName("branch", s.Branch); err != nil {
		return fmt.Errorf("schedule %s: %w", s.Name, err)
	}
	return nil
}

// parse reads a schedule's cron expression and time zone.
func parse(s registry.Schedule) (*cronexpr.Expression, *time.Location, error) {
	if n := len(strings.Fields(s.Cron)); n != 5 || strings.ContainsAny(s.Cron, "@\n") {
		return nil, nil, fmt.Errorf("%q is not five cron fields (minute hour day-of-month month day-of-week)", s.Cron)
	}
	expr, err := cronexpr.Parse(s.Cron)
	if err != nil {
		return nil, nil, fmt.Errorf("cron %q: %w", s.Cron, err)
	}
	if expr.Next(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)).IsZero() {
		return nil, nil, fmt.Errorf("cron %q never falls", s.Cron)
	}
	loc, err := zone(s.TZ)
	if err != nil {
		return nil, nil, err
	}
	return expr, loc, nil
}

// zone loads a named time zone; the machine's own ("Local") is no name.
func zone(name string) (*time.Location, error) {
	if name == "" {
		return time.UTC, nil
	}
	if name == "Local" || strings.ContainsAny(name, " \n") {
		return nil, fmt.Errorf("time zone %q: name one, as Europe/Paris or UTC", name)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("time zone %q is not one this bot knows (IANA names, as Europe/Paris or UTC)", name)
	}
	return loc, nil
}

// Last returns the last slot of s at or before now that is to be built: not before the
// schedule was set (Since), and at most CatchUp old; ok is false when there is none.
func Last(s registry.Schedule, now time.Time) (slot time.Time, ok bool) {
	expr, loc, err := parse(s)
	if err != nil {
		return time.Time{}, false
	}
	from := now.Add(-CatchUp)
	if s.Since.After(from) {
		from = s.Since
	}
	// Next gives the slot strictly after its argument: a second before, to include from.
	for t := expr.Next(from.Add(-time.Second).In(loc)); !t.IsZero() && !t.After(now); t = expr.Next(t) {
		slot, ok = t, true
	}
	return slot.UTC(), ok
}

// Next returns the first slot of s after now; zero when none (or s does not parse).
func Next(s registry.Schedule, now time.Time) time.Time {
	expr, loc, err := parse(s)
	if err != nil {
		return time.Time{}
	}
	return expr.Next(now.In(loc))
}

// Format writes a schedule in the settings page's one-line form:
//
//	<name> <minute> <hour> <day-of-month> <month> <day-of-week> <time zone> <branch> [<flavor>]
func Format(s registry.Schedule) string {
	tz := s.TZ
	if tz == "" {
		tz = "UTC"
	}
	line := strings.Join([]string{s.Name, strings.Join(strings.Fields(s.Cron), " "), tz, s.Branch}, " ")
	if s.Flavor != "" {
		line += " " + s.Flavor
	}
	return line
}

// ParseLines reads schedules in Format's form, one per line (empty lines and those that
// start with # are left out), each checked; was gives the schedules as they were, whose
// Since is kept when a line leaves the schedule as it was (a changed one starts afresh).
func ParseLines(text string, was []registry.Schedule, now time.Time) ([]registry.Schedule, error) {
	var out []registry.Schedule
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 8 && len(f) != 9 {
			return nil, fmt.Errorf("line %d: a schedule is: name, five cron fields, a time zone, a branch, and a flavor if not the first", i+1)
		}
		s := registry.Schedule{Name: f[0], Cron: strings.Join(f[1:6], " "), TZ: f[6], Branch: f[7], Since: now.UTC().Truncate(time.Second)}
		if s.TZ == "UTC" {
			s.TZ = ""
		}
		if len(f) == 9 {
			s.Flavor = f[8]
		}
		if err := Check(s); err != nil {
			return nil, fmt.Errorf("line %d: %w", i+1, err)
		}
		for _, o := range out {
			if o.Name == s.Name {
				return nil, fmt.Errorf("line %d: two schedules are named %s", i+1, s.Name)
			}
		}
		for _, w := range was {
			if w.Name == s.Name && w.Cron == s.Cron && w.TZ == s.TZ && w.Branch == s.Branch && w.Flavor == s.Flavor {
				s.Since = w.Since
			}
		}
		out = append(out, s)
	}
	if len(out) > MaxSchedules {
		return nil, fmt.Errorf("%d schedules: a repository has at most %d", len(out), MaxSchedules)
	}
	return out, nil
}

// ErrParam is what a run's parameter that the settings do not allow is refused with.
var ErrParam = errors.New("parameter refused")

package schedule

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/albatros-ci/albatros/registry"
)

func at(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestLastSlot(t *testing.T) {
	nightly := registry.Schedule{Name: "nightly", Cron: "0 3 * * *", TZ: "Europe/Paris", Branch: "main"}
	for _, c := range []struct {
		name string
		s    registry.Schedule
		now  string
		want string // "" for none
	}{
		// 03:00 in Paris is 02:00 UTC in winter, 01:00 UTC in summer.
		{"winter", nightly, "2026-12-04T10:00:00Z", "2026-12-04T02:00:00Z"},
		{"summer", nightly, "2026-07-04T10:00:00Z", "2026-07-04T01:00:00Z"},
		{"on the slot itself", nightly, "2026-12-04T02:00:00Z", "2026-12-04T02:00:00Z"},
		{"the day's slot is not yet: yesterday's is too old", nightly, "2026-12-04T01:59:00Z", ""},
		{"within the catch-up", nightly, "2026-12-04T13:59:00Z", "2026-12-04T02:00:00Z"},
		{"past the catch-up", nightly, "2026-12-04T14:01:00Z", ""},
		{"not before the schedule was set", registry.Schedule{Name: "n", Cron: "0 3 * * *", TZ: "Europe/Paris", Branch: "main", Since: at(t, "2026-12-04T02:30:00Z")}, "2026-12-04T10:00:00Z", ""},
		{"every minute", registry.Schedule{Name: "m", Cron: "* * * * *", Branch: "main"}, "2026-12-04T10:00:42Z", "2026-12-04T10:00:00Z"},
		{"every minute, set this minute", registry.Schedule{Name: "m", Cron: "* * * * *", Branch: "main", Since: at(t, "2026-12-04T10:00:30Z")}, "2026-12-04T10:00:42Z", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, ok := Last(c.s, at(t, c.now))
			if c.want == "" {
				if ok {
					t.Fatalf("Last = %s, want none", got)
				}
				return
			}
			if !ok || !got.Equal(at(t, c.want)) {
				t.Fatalf("Last = %s %v, want %s", got, ok, c.want)
			}
		})
	}
	if n := Next(nightly, at(t, "2026-12-04T10:00:00Z")); !n.Equal(at(t, "2026-12-05T02:00:00Z")) {
		t.Errorf("Next = %s", n)
	}
}

func TestCheckRefusesWhatCannotRun(t *testing.T) {
	ok := registry.Schedule{Name: "nightly", Cron: "0 3 * * 1-5", TZ: "America/New_York", Branch: "release/1.x"}
	if err := Check(ok); err != nil {
		t.Fatalf("Check(%+v): %v", ok, err)
	}
	for what, s := range map[string]registry.Schedule{
		"six fields":         {Name: "a", Cron: "0 0 3 * * *", Branch: "main"},
		"a macro":            {Name: "a", Cron: "@daily", Branch: "main"},
		"a bad field":        {Name: "a", Cron: "61 * * * *", Branch: "main"},
		"never":              {Name: "a", Cron: "0 0 31 2 *", Branch: "main"},
		"an unknown zone":    {Name: "a", Cron: "0 3 * * *", TZ: "Mars/Olympus", Branch: "main"},
		"the bot's own zone": {Name: "a", Cron: "0 3 * * *", TZ: "Local", Branch: "main"},
		"a bad branch":       {Name: "a", Cron: "0 3 * * *", Branch: "main..x"},
		"an option":          {Name: "a", Cron: "0 3 * * *", Branch: "-x"},
		"a bad name":         {Name: "Nightly Build", Cron: "0 3 * * *", Branch: "main"},
	} {
		if err := Check(s); err == nil {
			t.Errorf("%s: Check(%+v) accepted it", what, s)
		}
	}
}

func TestParseLinesKeepsWhatDidNotChange(t *testing.T) {
	then, now := at(t, "2026-12-01T00:00:00Z"), at(t, "2026-12-04T12:00:00Z")
	was := []registry.Schedule{{Name: "nightly", Cron: "0 3 * * *", TZ: "Europe/Paris", Branch: "main", Since: then}}
	got, err := ParseLines("# comment\nnightly 0 3 * * * Europe/Paris main\n\nweekly 0 4 * * 0 UTC release docs\n", was, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !got[0].Since.Equal(then) || got[1].TZ != "" || got[1].Flavor != "docs" || !got[1].Since.Equal(now) {
		t.Fatalf("ParseLines = %+v", got)
	}
	if line := Format(got[1]); line != "weekly 0 4 * * 0 UTC release docs" {
		t.Errorf("Format = %q", line)
	}
	changed, _ := ParseLines("nightly 0 4 * * * Europe/Paris main", was, now)
	if !changed[0].Since.Equal(now) {
		t.Errorf("a changed schedule kept its Since: %+v", changed[0])
	}
	for _, bad := range []string{"nightly 0 3 * * * main", "a 0 3 * * * UTC main\na 0 4 * * * UTC main", "x 0 3 * * * UTC main flavor extra"} {
		if _, err := ParseLines(bad, nil, now); err == nil || !strings.Contains(err.Error(), "line") {
			t.Errorf("ParseLines(%q) = %v, want an error naming the line", bad, err)
		}
	}
}

func TestParams(t *testing.T) {
	ps, err := ParseParams("TARGET choice staging,production\nDRY_RUN boolean true\nNOTE string two words\nLEVEL string")
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 4 || ps[0].Choices[1] != "production" || ps[1].Default != "true" || ps[2].Default != "two words" || ps[3].Default != "" {
		t.Fatalf("ParseParams = %+v", ps)
	}
	for _, p := range ps {
		back, err := ParseParams(FormatParam(p))
		if err != nil || len(back) != 1 || FormatParam(back[0]) != FormatParam(p) {
			t.Errorf("FormatParam(%+v) does not read back: %v %+v", p, err, back)
		}
	}
	got, err := Values(ps, map[string]string{"TARGET": "production"})
	if err != nil || got["TARGET"] != "production" || got["DRY_RUN"] != "true" || got["NOTE"] != "two words" {
		t.Fatalf("Values = %v, %v", got, err)
	}
	if _, set := got["LEVEL"]; set {
		t.Errorf("an empty string parameter is set: %v", got)
	}
	for what, given := range map[string]map[string]string{
		"undeclared":    {"EVIL": "1"},
		"reserved":      {"COMMIT": "0000000000000000000000000000000000000000"},
		"not a choice":  {"TARGET": "dev"},
		"not a boolean": {"DRY_RUN": "yes"},
		"a newline":     {"NOTE": "a\nb"},
		"too long":      {"NOTE": strings.Repeat("x", MaxValue+1)},
	} {
		if _, err := Values(ps, given); !errors.Is(err, ErrParam) {
			t.Errorf("%s: Values(%v) = %v, want ErrParam", what, given, err)
		}
	}
	for _, bad := range []string{"lower string", "COMMIT string", "X number", "X choice", "X choice a,b c", "X boolean maybe", "X string\nX string"} {
		if _, err := ParseParams(bad); err == nil {
			t.Errorf("ParseParams(%q) accepted it", bad)
		}
	}
}

package secrets_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/albatros-ci/albatros/secrets"
)

// header is the first line of every payload.
const header = "# Albatros build secrets (sourced before .albatros runs)\n"

func TestEmpty(t *testing.T) {
	if got := string(secrets.Empty()); got != header {
		t.Errorf("Empty() = %q, want %q", got, header)
	}
}

func TestPayload(t *testing.T) {
	tests := []struct {
		name   string
		inject string
		vars   map[string]string
		want   string
	}{
		{
			name: "nothing",
			want: header,
		},
		{
			name:   "inject only, newline added",
			inject: "set +x\nexport SECRET1=xx",
			want:   header + "set +x\nexport SECRET1=xx\n",
		},
		{
			name:   "inject kept as it is",
			inject: "  export A=\"x y\"  # keep me\n\n",
			want:   header + "  export A=\"x y\"  # keep me\n\n",
		},
		{
			name: "vars sorted by name",
			vars: map[string]string{"ZED": "z", "ALPHA": "a", "_MID": "m", "Mixed_9": "9"},
			want: header +
				"export ALPHA='a'\n" +
				"export Mixed_9='9'\n" +
				"export ZED='z'\n" +
				"export _MID='m'\n",
		},
		{
			name:   "inject before vars",
			inject: "set +x\n",
			vars:   map[string]string{"TOKEN": "t0k3n"},
			want:   header + "set +x\nexport TOKEN='t0k3n'\n",
		},
		{
			name: "single quotes escaped",
			vars: map[string]string{"Q": "it's 'quoted'"},
			want: header + `export Q='it'\''s '\''quoted'\'''` + "\n",
		},
		{
			name: "nothing else is escaped",
			vars: map[string]string{"V": "$HOME `id` \"x\" \\n !"},
			want: header + "export V='$HOME `id` \"x\" \\n !'\n",
		},
		{
			name: "empty value",
			vars: map[string]string{"E": ""},
			want: header + "export E=''\n",
		},
		{
			name: "multi-line value",
			vars: map[string]string{"KEY": "line 1\nline 2\n"},
			want: header + "export KEY='line 1\nline 2\n'\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := secrets.Payload(tt.inject, tt.vars)
			if err != nil {
				t.Fatalf("Payload: %v", err)
			}
			if string(got) != tt.want {
				t.Errorf("Payload =\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

func TestPayloadRejectsInvalidNames(t *testing.T) {
	for _, name := range []string{"", "1X", "A-B", "A B", "A=B", "A\n", "\nA", "Ä", "$A", "A;rm"} {
		t.Run(name, func(t *testing.T) {
			got, err := secrets.Payload("", map[string]string{"OK": "v", name: "v"})
			if err == nil {
				t.Fatalf("Payload accepted name %q:\n%s", name, got)
			}
			if got != nil {
				t.Errorf("Payload returned %q with its error", got)
			}
			if !strings.Contains(err.Error(), strconv.Quote(name)) {
				t.Errorf("error %q does not name %q", err, name)
			}
		})
	}
}

// TestPayloadIsValidSh sources real payloads with /bin/sh, as the builders do, and checks
// that every value arrives in the environment byte for byte.
func TestPayloadIsValidSh(t *testing.T) {
	values := map[string]string{
		"single quotes":   "it's a 'test''",
		"only a quote":    "'",
		"double quotes":   `say "hi"`,
		"dollar":          "$HOME ${PATH} $(id) $1",
		"backticks":       "`id`",
		"backslashes":     `C:\path\n\\ \'`,
		"spaces":          "  leading and trailing  ",
		"newlines":        "line 1\nline 2\n\nline 4\n",
		"quote newline":   "'\n'",
		"crlf":            "a\r\nb\r\n",
		"trailing blanks": "first  \nsecond\t\nthird",
		"glob":            "* ? [a-z]",
		"semicolon":       "a; exit 1; b",
		"hash":            "#not a comment",
		"empty":           "",
		"utf-8":           "pässwörd ✓",
		"pem": "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n" +
			"-----END OPENSSH PRIVATE KEY-----\n",
	}
	dir := t.TempDir()
	for name, value := range values {
		t.Run(name, func(t *testing.T) {
			payload, err := secrets.Payload("set +x", map[string]string{"A": "first", "SECRET": value, "Z": "last"})
			if err != nil {
				t.Fatalf("Payload: %v", err)
			}
			file := filepath.Join(dir, strings.ReplaceAll(name, " ", "_"))
			if err := os.WriteFile(file, payload, 0o600); err != nil {
				t.Fatal(err)
			}
			for variable, want := range map[string]string{"SECRET": value, "A": "first", "Z": "last"} {
				if got := sourceAndPrint(t, file, variable); got != want {
					t.Errorf("$%s after sourcing = %q, want %q\npayload:\n%s", variable, got, want, payload)
				}
			}
		})
	}
}

// sourceAndPrint sources file with /bin/sh and returns the value of variable, taken from
// the environment of a child so that the export is checked too.
func sourceAndPrint(t *testing.T, file, variable string) string {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", `. "$1" && exec printenv "$2"`, "sh", file, variable)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("sh: %v %s", err, stderr)
	}
	// printenv ends the value with a newline of its own.
	return strings.TrimSuffix(string(out), "\n")
}

func TestValues(t *testing.T) {
	tests := []struct {
		name    string
		payload string
		want    []string
	}{
		{
			name: "nothing",
		},
		{
			name:    "untrusted payload",
			payload: header,
		},
		{
			name:    "original Albatros inject",
			payload: "set +x\nexport SECRET1=xx\nexport B=\"quoted\"\nC=plain",
			want:    []string{"xx", "quoted", "plain"},
		},
		{
			name:    "inject with CRLF line ends",
			payload: "set +x\r\nexport TOKEN=abcdef\r\nexport OTHER=\"ghijk\"\r\n",
			want:    []string{"abcdef", "ghijk"},
		},
		{
			name:    "indentation and blanks around the value",
			payload: "  export   INDENTED=value1  \n\tTAB=value2\n",
			want:    []string{"value1", "value2"},
		},
		{
			name:    "single-quoted inject value",
			payload: "export PASS='p@ss word'\n",
			want:    []string{"p@ss word"},
		},
		{
			name:    "empty values are returned too",
			payload: "A=\nexport B=''\nC=\"\"\n",
			want:    []string{"", "", ""},
		},
		{
			name:    "not assignments",
			payload: "# TOKEN=commented\nset +x\necho A=b\nif [ -n \"$X\" ]; then :; fi\n1X=no\nA-B=no\n",
		},
		{
			// sh refuses an unterminated quote; the value is read to the end of the
			// snippet, so that whatever it holds is masked (its lines too).
			name:    "unbalanced double quote runs to the end",
			payload: "X=\"open\n",
			want:    []string{"open\n"},
		},
		{
			name: "payload with inject and vars",
			payload: header + "set +x\nexport SECRET1=xx\n" +
				"export API_TOKEN='tok-123'\n" +
				"export QUOTED='it'\\''s'\n",
			want: []string{"xx", "tok-123", "it's"},
		},
		{
			name:    "multi-line value",
			payload: header + "export KEY='-----BEGIN KEY-----\nAAAA\n-----END KEY-----\n'\nexport NEXT='n'\n",
			want:    []string{"-----BEGIN KEY-----\nAAAA\n-----END KEY-----\n", "n"},
		},
		{
			name:    "assignment-like line inside a multi-line value",
			payload: header + "export KEY='a\nexport B=inner\n'\n",
			want:    []string{"a\nexport B=inner\n"},
		},
		{
			name:    "unterminated quote runs to the end",
			payload: "export KEY='a\nb",
			want:    []string{"a\nb"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := secrets.Values([]byte(tt.payload))
			if !slices.Equal(got, tt.want) {
				t.Errorf("Values(%q) = %q, want %q", tt.payload, got, tt.want)
			}
		})
	}
}

// roundTrip renders value into a payload and reads it back.
func roundTrip(t *testing.T, value string) []string {
	t.Helper()
	payload, err := secrets.Payload("set +x\nexport SECRET1=xx", map[string]string{"A": "first", "B": value, "C": "last"})
	if err != nil {
		t.Fatalf("Payload: %v", err)
	}
	return secrets.Values(payload)
}

func TestValuesRoundTrip(t *testing.T) {
	for _, value := range []string{
		"plain",
		"",
		"it's",
		"'",
		"''",
		`'\''`,
		`\`,
		`ends with \`,
		`"double"`,
		"$HOME `id`",
		"  spaces  ",
		"a\nb",
		"\nleading newline",
		"trailing newline\n",
		"'\n'",
		"x'\n'y",
		"line 1\n  indented line 2\nline 3",
		"export NOT=a secret\nline",
		"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
		"pässwörd ✓",
	} {
		checkRoundTrip(t, value)
	}
}

// checkRoundTrip checks that Values recovers value from its payload, and that a masker fed
// with what Values recovers hides the value when the build prints it.
func checkRoundTrip(t *testing.T, value string) {
	t.Helper()
	want := []string{"xx", "first", value, "last"}
	got := roundTrip(t, value)
	if !slices.Equal(got, want) {
		t.Errorf("Values(Payload(%q)) = %q, want %q", value, got, want)
	}
	if len(value) < secrets.MinLength {
		return
	}
	if out := mask(t, got, value); out != secrets.Mask {
		t.Errorf("printing %q with the values of its payload masked gives %q, want %q", value, out, secrets.Mask)
	}
}

// A value whose first line ends in blanks loses them: Values trims the whole right-hand
// side of the assignment line, also when the quoted value continues on the next line.
func TestValuesRoundTripBlanksBeforeNewline(t *testing.T) {
	for _, value := range []string{"first  \nsecond", "first\t\nsecond", "ab \ncd"} {
		checkRoundTrip(t, value)
	}
}

// A value with CRLF line ends (a key pasted on Windows) loses its carriage returns:
// bufio.ScanLines drops the \r before each \n, also inside a quoted value.
func TestValuesRoundTripCRLF(t *testing.T) {
	for _, value := range []string{"a\r\nb", "line 1\r\nline 2\r\n", "ab\r\ncd"} {
		checkRoundTrip(t, value)
	}
}

// TestValuesAgreesWithSh checks Values on inject lines against what sh makes of them: the
// masker must hide the value the build really has in its environment.
func TestValuesAgreesWithSh(t *testing.T) {
	dir := t.TempDir()
	for _, line := range []string{
		`export V=plain`,
		`V=plain`,
		`  export V=indented`,
		`export V="double quoted"`,
		`export V='single quoted'`,
		`export V='it'\''s'`,
		`export V=abc123 # deploy token`,
		`export V="hunter2" # from vault`,
		`export V="p@ss\$word"`,
		`export V="say \"hi\""`,
		`export V=a\ b`,
	} {
		t.Run(line, func(t *testing.T) {
			file := filepath.Join(dir, "inject")
			if err := os.WriteFile(file, []byte(line+"\nexport V\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			want := sourceAndPrint(t, file, "V")
			if got := secrets.Values([]byte(line)); !slices.Equal(got, []string{want}) {
				t.Errorf("Values(%q) = %q, but sh sets V to %q", line, got, want)
			}
		})
	}
}

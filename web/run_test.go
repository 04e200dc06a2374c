package web

import "testing"

// The same run form sent twice is one build key; its request id sent again with another
// branch, commit or parameter value is another key, not the first build's answer.
func TestRunKey(t *testing.T) {
	base := runKey("quentin", "n0nce0123456789ab", "main", "", map[string]string{"TARGET": "staging", "DRY": "true"})
	if again := runKey("quentin", "n0nce0123456789ab", "main", "", map[string]string{"DRY": "true", "TARGET": "staging"}); again != base {
		t.Errorf("the same form: %s, then %s", base, again)
	}
	for what, k := range map[string]string{
		"another user":   runKey("mallory", "n0nce0123456789ab", "main", "", map[string]string{"TARGET": "staging", "DRY": "true"}),
		"another branch": runKey("quentin", "n0nce0123456789ab", "dev", "", map[string]string{"TARGET": "staging", "DRY": "true"}),
		"a commit named": runKey("quentin", "n0nce0123456789ab", "main", "6dcb09b5b57875f334f61aebed695e2e4193db5e", map[string]string{"TARGET": "staging", "DRY": "true"}),
		"another value":  runKey("quentin", "n0nce0123456789ab", "main", "", map[string]string{"TARGET": "production", "DRY": "true"}),
		"a value moved":  runKey("quentin", "n0nce0123456789ab", "main", "", map[string]string{"TARGET": "staging=DRY", "": "true"}),
	} {
		if k == base {
			t.Errorf("%s: the same key %s", what, k)
		}
	}
}

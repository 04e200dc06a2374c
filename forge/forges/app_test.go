package forges_test

import (
	"context"
	"slices"
	"testing"

	"github.com/albatros-ci/albatros/forge/forges"
	"github.com/albatros-ci/albatros/registry"
)

type recordedApp struct{ app *registry.GitHubAppOpen }

func (r recordedApp) GitHubApp(context.Context) (*registry.GitHubAppOpen, error) { return r.app, nil }

// The recorded App's webhook secret signs until the operator rotates it: their secrets
// then replace it, and dropping the previous one retires it.
func TestRecordedAppWebhookSecretRotation(t *testing.T) {
	rec := recordedApp{&registry.GitHubAppOpen{GitHubApp: registry.GitHubApp{ID: 1}, WebhookSecret: "recorded"}}
	for _, tc := range []struct {
		given, want []string
	}{
		{nil, []string{"recorded"}},
		{[]string{"new", "recorded"}, []string{"new", "recorded"}},
		{[]string{"new"}, []string{"new"}},
	} {
		s, _, err := forges.RecordedApp(rec, "", tc.given...)(context.Background())
		if err != nil || !slices.Equal(s.WebhookSecrets, tc.want) {
			t.Errorf("given %v: %v, %v; want %v", tc.given, s.WebhookSecrets, err, tc.want)
		}
	}
}

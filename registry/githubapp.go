package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	consul "github.com/hashicorp/consul/api"
)

// GitHubApp is the bot's GitHub App as GitHub created it from the bot's manifest: kept
// under `albatros/github-app`, its private key, webhook secret and OAuth client secret
// sealed (package seal) with the bot's secret key. Every replica reads it from there.
type GitHubApp struct {
	ID   int64  `json:"id"`
	Slug string `json:"slug"`
	// Owner is the account that owns the App, HTMLURL its page on GitHub.
	Owner   string `json:"owner,omitempty"`
	HTMLURL string `json:"html_url,omitempty"`
	// WebURL and APIURL are the GitHub it lives on.
	WebURL string `json:"web_url"`
	APIURL string `json:"api_url,omitempty"`
	// ClientID is its OAuth client's id.
	ClientID string `json:"client_id"`
	// Key (PEM), WebhookSecret and ClientSecret, sealed.
	Key           string `json:"key"`
	WebhookSecret string `json:"webhook_secret"`
	ClientSecret  string `json:"client_secret"`
	// CreatedBy is the GitHub login of who created it through the bot, CreatedAt when.
	CreatedBy string    `json:"created_by,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// GitHubAppOpen is a GitHub App with its secrets open, in memory only.
type GitHubAppOpen struct {
	GitHubApp
	Key           []byte
	WebhookSecret string
	ClientSecret  string
	// Version changes whenever the record does (Consul's ModifyIndex).
	Version uint64
}

func (r *Registry) githubAppKey() string { return r.prefix + "github-app" }

func githubAppPurpose(field string, id int64) string {
	return fmt.Sprintf("github-app:%d:%s", id, field)
}

// GitHubApp reads the bot's GitHub App, secrets opened; ErrNotFound when there is none.
// It is read as the entries are (from memory when the registry follows them).
func (r *Registry) GitHubApp(ctx context.Context) (*GitHubAppOpen, error) {
	if r.keys == nil {
		return nil, ErrNoKey
	}
	pair, err := r.pair(ctx, r.githubAppKey())
	if err != nil {
		return nil, err
	}
	if pair == nil {
		return nil, fmt.Errorf("github app: %w", ErrNotFound)
	}
	var app GitHubApp
	if err := json.Unmarshal(pair.Value, &app); err != nil {
		return nil, fmt.Errorf("consul key %s is not a GitHub App: %w", pair.Key, err)
	}
	open := &GitHubAppOpen{GitHubApp: app, Version: pair.ModifyIndex}
	for _, f := range []struct {
		name, sealed string
		into         func([]byte)
	}{
		{"key", app.Key, func(b []byte) { open.Key = b }},
		{"webhook-secret", app.WebhookSecret, func(b []byte) { open.WebhookSecret = string(b) }},
		{"client-secret", app.ClientSecret, func(b []byte) { open.ClientSecret = string(b) }},
	} {
		plain, err := r.keys.Open(f.sealed, githubAppPurpose(f.name, app.ID))
		if err != nil {
			return nil, fmt.Errorf("github app %d: %s: %w", app.ID, f.name, err)
		}
		f.into(plain)
	}
	open.GitHubApp.Key, open.GitHubApp.WebhookSecret, open.GitHubApp.ClientSecret = "", "", ""
	return open, nil
}

// PutGitHubApp records the bot's GitHub App, its secrets sealed, only if the bot has none
// yet (ErrConflict otherwise: one App per bot, which an operator replaces by deleting the
// key).
func (r *Registry) PutGitHubApp(ctx context.Context, app GitHubAppOpen) error {
	if r.keys == nil {
		return ErrNoKey
	}
	rec := app.GitHubApp
	rec.Key = r.keys.Seal(app.Key, githubAppPurpose("key", rec.ID))
	rec.WebhookSecret = r.keys.Seal([]byte(app.WebhookSecret), githubAppPurpose("webhook-secret", rec.ID))
	rec.ClientSecret = r.keys.Seal([]byte(app.ClientSecret), githubAppPurpose("client-secret", rec.ID))
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	key := r.githubAppKey()
	ok, resp, _, err := r.client.Txn().Txn(consul.TxnOps{{KV: &consul.KVTxnOp{Verb: consul.KVCAS, Key: key, Value: b, Index: 0}}},
		(&consul.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return fmt.Errorf("%w: consul cas %s: %w", ErrUnavailable, key, err)
	}
	if !ok || resp == nil || len(resp.Results) != 1 || resp.Results[0].KV == nil {
		return fmt.Errorf("github app: %w (the bot has one already)", ErrConflict)
	}
	r.wrote(key, b, resp.Results[0].KV.ModifyIndex)
	return nil
}

// resealApp seals the App's values again with the current key when a previous key sealed
// them (Reseal); it reports whether it wrote.
func (r *Registry) resealApp(ctx context.Context) (bool, error) {
	key := r.githubAppKey()
	pair, _, err := r.kv.Get(key, (&consul.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return false, fmt.Errorf("%w: consul get %s: %w", ErrUnavailable, key, err)
	}
	if pair == nil {
		return false, nil
	}
	var app GitHubApp
	if err := json.Unmarshal(pair.Value, &app); err != nil {
		return false, fmt.Errorf("consul key %s is not a GitHub App: %w", key, err)
	}
	if r.keys.Current(app.Key) && r.keys.Current(app.WebhookSecret) && r.keys.Current(app.ClientSecret) {
		return false, nil
	}
	for _, f := range []struct {
		name string
		v    *string
	}{{"key", &app.Key}, {"webhook-secret", &app.WebhookSecret}, {"client-secret", &app.ClientSecret}} {
		plain, err := r.keys.Open(*f.v, githubAppPurpose(f.name, app.ID))
		if err != nil {
			return false, fmt.Errorf("github app %d: %s: %w", app.ID, f.name, err)
		}
		*f.v = r.keys.Seal(plain, githubAppPurpose(f.name, app.ID))
	}
	b, err := json.Marshal(app)
	if err != nil {
		return false, err
	}
	ok, _, err := r.kv.CAS(&consul.KVPair{Key: key, Value: b, ModifyIndex: pair.ModifyIndex}, (&consul.WriteOptions{}).WithContext(ctx))
	if err != nil {
		return false, fmt.Errorf("%w: consul cas %s: %w", ErrUnavailable, key, err)
	}
	return ok, nil
}

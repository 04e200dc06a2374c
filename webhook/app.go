package webhook

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/albatros-ci/albatros/forge"
	"github.com/albatros-ci/albatros/forge/forges"
	"github.com/albatros-ci/albatros/install"
	"github.com/albatros-ci/albatros/pipeline"
	"github.com/albatros-ci/albatros/registry"
)

// appSigned reports whether a delivery is signed with one of the App's webhook secrets,
// and the digest of the one that signed it. A delivery signed with no secret of the
// App's is not an error: it may be a repository's own webhook's.
func (in *Intake) appSigned(r *http.Request, d forges.Driver, body []byte) (cred [32]byte, ok bool, err error) {
	secrets, err := in.opts.App.WebhookSecrets(r.Context())
	if err != nil {
		return cred, false, fmt.Errorf("%w: the GitHub App: %w", registry.ErrUnavailable, err)
	}
	for _, secret := range secrets {
		if secret != "" && d.Verify(r.Header, body, secret) == nil {
			return appDigest(secret), true, nil
		}
	}
	return cred, false, nil
}

func appDigest(secret string) [32]byte { return sha256.Sum256([]byte("app\x00" + secret)) }

// appIntake takes a delivery signed with the App's secret: about an installation, it is
// recorded at once; about a repository, the repository must be an installation's,
// reached through the installation the delivery names.
func (in *Intake) appIntake(r *http.Request, d forges.Driver, log *slog.Logger, body []byte, cred [32]byte) (code int, msg, repoName string, err error) {
	refused := func(err error) (int, string, string, error) {
		code, msg, err := refuse(err)
		return code, msg, repoName, err
	}
	ev, perr := d.Parse(r.Header, body)
	switch {
	case perr == nil && ev.Kind == forge.KindPing:
		return http.StatusOK, "pong", "", nil
	case ev.Kind == forge.KindInstallation && errors.Is(perr, forge.ErrIgnoreEvent):
		return refused(perr)
	case perr == nil && ev.Kind == forge.KindInstallation:
		what, err := in.opts.App.Installation(r.Context(), ev)
		if errors.Is(err, install.ErrBusy) {
			err = fmt.Errorf("%w: %w", errBusy, err)
		}
		if err != nil {
			return refused(err)
		}
		return http.StatusOK, "installation: " + what, ev.Install.Account, nil
	case ev.Repo.CloneURL == "":
		if perr == nil || errors.Is(perr, forge.ErrIgnoreEvent) {
			perr = fmt.Errorf("%w: no repository", forge.ErrMalformed)
		}
		return refused(perr)
	}
	repoName = ev.Repo.FullName
	entry, err := in.repos.Repo(r.Context(), ev.Repo.CloneURL)
	if errors.Is(err, registry.ErrNotFound) {
		// Not installed (any more), or not given to the App: GitHub still delivers a
		// moment after an uninstall.
		return refused(forge.Ignore("%s is not a repository of an installation of the App", ev.Repo.FullName))
	}
	if err != nil {
		return refused(err)
	}
	if perr != nil {
		return refused(perr)
	}
	if entry.AppInstallation == 0 || ev.Installation != entry.AppInstallation {
		// An entry of its own, or another installation's: what the App's installation
		// says of it does not build it.
		return refused(fmt.Errorf("%w: %s is not reached through installation %d of the App", errUnknownRepo, ev.Repo.FullName, ev.Installation))
	}
	return in.accept(r, log, ev, entry, pipeline.Options{}, job{cred: cred, byApp: true})
}

// appCredential is what authenticates a waiting App delivery now: the digest it was
// accepted with while one of the App's secrets still has it and its repository is still
// reached through the installation it names; else another value, and it is dropped.
func (in *Intake) appCredential(ctx context.Context, was [32]byte, entry *registry.Repo, ev forge.Event) ([32]byte, error) {
	secrets, err := in.opts.App.WebhookSecrets(ctx)
	if err != nil {
		return [32]byte{}, fmt.Errorf("the GitHub App: %w", err)
	}
	if entry.AppInstallation == 0 || entry.AppInstallation != ev.Installation {
		return [32]byte{}, nil
	}
	for _, s := range secrets {
		if appDigest(s) == was {
			return was, nil
		}
	}
	return [32]byte{}, nil
}

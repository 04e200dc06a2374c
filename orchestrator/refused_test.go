package orchestrator

import (
	"net/http"
	"net/http/httptest"
	"testing"

	nomad "github.com/hashicorp/nomad/api"
)

// A dispatch that Nomad answered 4xx, or that could not reach it, made nothing; a 5xx, or
// no answer, may have made the build. Answers of every class come from a stand-in here,
// since a real Nomad cannot be made to answer 5xx on demand; TestByKey checks a real 400
// and a real cut-off request.
func TestRefused(t *testing.T) {
	dispatchErr := func(t *testing.T, addr string) error {
		t.Helper()
		cfg := nomad.DefaultConfig()
		cfg.Address = addr
		c, err := nomad.NewClient(cfg)
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = c.Jobs().Dispatch("builder", nil, nil, "", nil)
		if err == nil {
			t.Fatal("dispatch succeeded")
		}
		return err
	}
	for code, want := range map[int]bool{400: true, 403: true, 404: true, 429: true, 500: false, 503: false} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "no", code)
		}))
		if got := refused(dispatchErr(t, srv.URL)); got != want {
			t.Errorf("answered %d: refused = %v, want %v", code, got, want)
		}
		srv.Close()
	}
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	addr := srv.URL
	srv.Close()
	if !refused(dispatchErr(t, addr)) {
		t.Error("unreachable: not refused, want refused (nothing was sent)")
	}
}

package launch

import (
	"errors"
	"testing"

	"github.com/pbftnode/pbftnode/config"
)

// TestApplicationChoosesTheOpener: kv is the built-in store (nil opener),
// ledger the ledger's opener, and a remote application the stub that
// says it is not wired yet.
func TestApplicationChoosesTheOpener(t *testing.T) {
	for _, tc := range []struct {
		spec       config.ApplicationSpec
		wantOpener bool
		wantErr    error
	}{
		{config.ApplicationSpec{Kind: config.ApplicationKV}, false, nil},
		{config.ApplicationSpec{}, false, nil},
		{config.ApplicationSpec{Kind: config.ApplicationLedger}, true, nil},
		{config.ApplicationSpec{Kind: config.ApplicationGRPC, Address: "127.0.0.1:7000"}, false, ErrRemoteNotWired},
		{config.ApplicationSpec{Kind: config.ApplicationUnix, Address: "/run/app.sock"}, false, ErrRemoteNotWired},
	} {
		open, err := Application(config.Home{Application: tc.spec})
		if !errors.Is(err, tc.wantErr) || (open != nil) != tc.wantOpener {
			t.Errorf("%s: opener %v, error %v; want opener %v, error %v", tc.spec, open != nil, err, tc.wantOpener, tc.wantErr)
		}
	}
	if _, err := Application(config.Home{Application: config.ApplicationSpec{Kind: "bank"}}); err == nil {
		t.Error("an unknown application kind was accepted")
	}
}

package history_test

import (
	"io"
	"log/slog"
	"testing"

	"github.com/mqim/mqim/history"
	"github.com/mqim/mqim/history/historytest"
	"github.com/mqim/mqim/kvstore"
)

func TestBadgerContract(t *testing.T) {
	historytest.Run(t, func(t *testing.T) history.Store {
		db, err := kvstore.Open(t.TempDir(), kvstore.Options{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		s, err := history.OpenBadger(db, history.BadgerOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close(); db.Close() })
		return s
	})
}

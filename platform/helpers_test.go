package platform_test

import (
	"encoding/json"
	"io"
	"net/http"
	"testing"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/mqim/mqim/envelope"

	"github.com/mqim/mqim/config"
)

type imtestConfig = config.Config

func httpGet(url string) (*http.Response, error) {
	resp, err := http.Get(url)
	if err == nil {
		resp.Body.Close()
	}
	return resp, err
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

type (
	pahoClient  = paho.Client
	pahoMessage = paho.Message
)

func jsonDecode(t *testing.T, r io.Reader, v any) {
	t.Helper()
	if err := json.NewDecoder(r).Decode(v); err != nil {
		t.Fatal(err)
	}
}

// syncAll walks GET /api/v1/sync from the start until more is false.
func syncAll(t *testing.T, base, token string) []envelope.Message {
	t.Helper()
	var all []envelope.Message
	cursor := ""
	for {
		var page struct {
			Messages []envelope.Message
			Cursor   string
			More     bool
		}
		getJSON(t, base+"/api/v1/sync?limit=1000&since="+cursor, token, &page)
		all = append(all, page.Messages...)
		cursor = page.Cursor
		if !page.More {
			return all
		}
	}
}

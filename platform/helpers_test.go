package platform_test

import (
	"encoding/json"
	"io"
	"net/http"
	"testing"

	paho "github.com/eclipse/paho.mqtt.golang"

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

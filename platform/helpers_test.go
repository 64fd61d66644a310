package platform_test

import (
	"encoding/json"
	"net/http"

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

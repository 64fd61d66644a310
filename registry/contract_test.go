package registry_test

import (
	"sync"
	"testing"
	"time"

	"github.com/mqim/mqim/registry"
	"github.com/mqim/mqim/registry/registrytest"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestMemoryContract(t *testing.T) {
	registrytest.Run(t, func(t *testing.T) registrytest.Fixture {
		clk := &clock{t: time.Unix(1_700_000_000, 0)}
		return registrytest.Fixture{Registry: registry.NewMemory(10*time.Second, clk.now), TTL: 10 * time.Second, Advance: clk.add}
	})
}

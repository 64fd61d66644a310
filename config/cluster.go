package config

import (
	"errors"
	"fmt"
	"net"
	"regexp"
)

// nodeID is what a node id may be: a key of the node registry's bucket.
var nodeID = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// Cluster is the `cluster:` section: several nodes on embedded NATS
// JetStream (package cluster). Absent (nil), the platform runs as a single
// node.
type Cluster struct {
	// Name: nodes with the same name form one cluster.
	Name string `yaml:"name"`
	// Node is this node's unique id.
	Node string `yaml:"node"`
	// Listen is this node's route listener (host:port).
	Listen string `yaml:"listen"`
	// Peers are the other nodes' route addresses.
	Peers []string `yaml:"peers"`
	// Replicas is the number of copies of the log (1, 3 or 5).
	Replicas int `yaml:"replicas"`
}

// Validate reports what is wrong with c.
func (c *Cluster) Validate() error {
	switch {
	case c.Name == "" || c.Node == "":
		return errors.New("cluster: name and node are required")
	case !nodeID.MatchString(c.Node):
		return fmt.Errorf("cluster: node %q: use 1-64 letters, digits, '-' or '_'", c.Node)
	case c.Listen == "":
		return errors.New("cluster: listen is required")
	case c.Replicas < 1 || c.Replicas > 5:
		return fmt.Errorf("cluster: replicas %d: want 1 to 5", c.Replicas)
	case c.Replicas > len(c.Peers)+1:
		return fmt.Errorf("cluster: replicas %d but only %d nodes", c.Replicas, len(c.Peers)+1)
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("cluster: listen %q: %w", c.Listen, err)
	}
	for _, p := range c.Peers {
		if _, _, err := net.SplitHostPort(p); err != nil {
			return fmt.Errorf("cluster: peer %q: %w", p, err)
		}
	}
	return nil
}

// Package bench is `mqim bench`: a load generator built on paho that drives
// the platform and, as a baseline, Debian's mosquitto started on its own
// loopback port, alternately (A B A B), with the same clients and topic
// shapes, and prints every metric for both and the ratio platform/mosquitto.
//
// The generator is open loop: message i is due at start + i/rate whatever
// the server does, its scheduled time and index travel inside the payload,
// and latency is measured from that scheduled time, so a server that falls
// behind shows it as latency instead of slowing the generator down.
//
// Servers run as subprocesses so their CPU time can be read from
// /proc/PID/stat; on a machine with two or more CPUs the servers are pinned
// to CPU 0 and the generator to CPU 1 (taskset). The primary efficiency
// number is server CPU-seconds per 100k delivered messages; a run in which
// the generator used most of its CPU is marked as generator-limited.
//
// See docs/benchmarks.md for the workloads, a run's numbers and what limits
// them.
package bench

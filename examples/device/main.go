// Command device is an example IoT device on the mqim platform, speaking
// plain MQTT 3.1.1 (paho) with a device API key:
//
//   - it publishes telemetry to devices/{me}/telemetry (a topic operator
//     rules open to devices, e.g. `{role: device, access: readwrite,
//     topics: ["devices/%u/#"]}`);
//   - it posts an alert into a group chat when a reading crosses a threshold;
//   - it answers commands sent to it as chat messages: "status",
//     "threshold N", anything else gets help.
//
// Usage:
//
//	mqim device create --user alice --password ... boiler
//	mqim device key create --user alice --password ... boiler
//	go run ./examples/device --mqtt tcp://127.0.0.1:1883 --user boiler --key mqk_... --group home
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"math"
	"os"
	"os/signal"
	"time"
)

func main() {
	var c Config
	flag.StringVar(&c.Broker, "mqtt", "tcp://127.0.0.1:1883", "broker URL")
	flag.StringVar(&c.User, "user", "", "device account")
	flag.StringVar(&c.Key, "key", os.Getenv("MQIM_DEVICE_KEY"), "API key (env MQIM_DEVICE_KEY)")
	flag.StringVar(&c.Group, "group", "", "group chat for alerts")
	flag.Float64Var(&c.Threshold, "threshold", 80, "alert threshold")
	flag.DurationVar(&c.Every, "every", 5*time.Second, "telemetry interval")
	flag.Parse()
	if c.User == "" || c.Key == "" {
		flag.Usage()
		os.Exit(2)
	}
	start := time.Now()
	// A simulated boiler temperature wandering between 60 and 90.
	c.Read = func() float64 { return 75 + 15*math.Sin(time.Since(start).Seconds()/30) }
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := Run(ctx, c, log.New(os.Stderr, c.User+" ", log.LstdFlags)); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

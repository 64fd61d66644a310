package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"strconv"
	"strings"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// Config of the device.
type Config struct {
	Broker, User, Key, Group string
	Threshold                float64
	Every                    time.Duration
	Read                     func() float64 // the sensor
}

type device struct {
	c         Config
	mqtt      paho.Client
	log       *log.Logger
	mu        sync.Mutex
	threshold float64
	last      float64
	alerting  bool
}

// Run connects and works until ctx ends.
func Run(ctx context.Context, c Config, logger *log.Logger) error {
	d := &device{c: c, log: logger, threshold: c.Threshold}
	opts := paho.NewClientOptions().AddBroker(c.Broker).
		SetClientID(c.User + ":main").SetUsername(c.User).SetPassword(c.Key).
		SetCleanSession(false). // persistent: commands sent while offline still arrive
		SetAutoReconnect(true).SetConnectRetry(true).SetConnectRetryInterval(2 * time.Second).
		SetOnConnectHandler(func(cl paho.Client) {
			// One subscription carries every chat message addressed to us.
			cl.Subscribe("im/u/"+c.User+"/dm/+", 1, d.onCommand)
		})
	d.mqtt = paho.NewClient(opts)
	if tok := d.mqtt.Connect(); !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
		return fmt.Errorf("connect: %v", tok.Error())
	}
	defer d.mqtt.Disconnect(250)
	t := time.NewTicker(c.Every)
	defer t.Stop()
	for {
		d.sample()
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (d *device) sample() {
	v := d.c.Read()
	d.mu.Lock()
	d.last = v
	crossed := v >= d.threshold && !d.alerting
	if v < d.threshold {
		d.alerting = false
	}
	if crossed {
		d.alerting = true
	}
	threshold := d.threshold
	d.mu.Unlock()
	payload, _ := json.Marshal(map[string]any{"value": v, "unit": "C", "ts": time.Now().UnixMilli()})
	d.mqtt.Publish("devices/"+d.c.User+"/telemetry", 0, false, payload)
	if crossed && d.c.Group != "" {
		d.say("im/g/"+d.c.Group, fmt.Sprintf("ALERT: temperature %.1f C is above %.1f C", v, threshold))
	}
}

// say publishes a chat message and waits for the server to store it.
func (d *device) say(topic, text string) {
	body, _ := json.Marshal(map[string]string{"body": text})
	tok := d.mqtt.Publish(topic, 1, false, body)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		d.log.Printf("send to %s failed: %v", topic, tok.Error())
	}
}

// onCommand answers a chat message. Messages arrive stamped by the server;
// our own carbons (from == us) are ignored.
func (d *device) onCommand(_ paho.Client, m paho.Message) {
	var msg struct{ From, Body string }
	if json.Unmarshal(m.Payload(), &msg) != nil || msg.From == "" || msg.From == d.c.User {
		return
	}
	reply := "im/u/" + msg.From + "/dm/" + d.c.User
	fields := strings.Fields(strings.ToLower(msg.Body))
	d.mu.Lock()
	last, threshold := d.last, d.threshold
	d.mu.Unlock()
	switch {
	case len(fields) == 1 && fields[0] == "status":
		d.say(reply, fmt.Sprintf("temperature %.1f C, alert threshold %.1f C", last, threshold))
	case len(fields) == 2 && fields[0] == "threshold":
		v, err := strconv.ParseFloat(fields[1], 64)
		if err != nil {
			d.say(reply, "threshold needs a number")
			return
		}
		d.mu.Lock()
		d.threshold = v
		d.mu.Unlock()
		d.say(reply, fmt.Sprintf("alert threshold set to %.1f C", v))
	default:
		d.say(reply, `commands: "status", "threshold N"`)
	}
}

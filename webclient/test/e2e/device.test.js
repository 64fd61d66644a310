// A device account (a sensor with an API key, speaking plain MQTT) chatting
// with a person: its messages arrive live and the conversation list marks
// it as a device.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import mqtt from 'mqtt';
import {
  expectTexts, login, newPage, publish, screenshot, signIn,
  serverAndBrowser,
} from './harness.js';

let srv;
let browser;

serverAndBrowser(['ann'], (s, b) => {
  srv = s;
  browser = b;
});

async function api(method, path, token, body) {
  const res = await fetch(`${srv.base}/api/v1${path}`, {
    method,
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  assert.ok(res.ok, `${method} ${path}: ${res.status} ${text}`);
  return JSON.parse(text);
}

test('a device account chats and is marked as a device', { timeout: 60_000 }, async () => {
  const token = await login(srv.base, 'ann');
  await api('POST', '/devices', token, { id: 'boiler' });
  const { key } = await api('POST', '/devices/boiler/keys', token, {});

  const ctx = await browser.newContext({ viewport: { width: 1100, height: 760 } });
  const page = await newPage(ctx);
  await signIn(page, srv.base, 'ann');

  const dev = await mqtt.connectAsync(`mqtt://127.0.0.1:${srv.mqttPort}`, {
    clientId: 'boiler:main', username: 'boiler', password: key, protocolVersion: 5, clean: true, reconnectPeriod: 0,
  });
  try {
    await publish(dev, 'im/u/ann/dm/boiler', 'Pressure is low (1.1 bar)');
    await page.waitForSelector('.conv[data-conv="dm:boiler"] .device-badge');
    await page.click('.conv[data-conv="dm:boiler"] .conv-btn');
    await expectTexts(page, ['Pressure is low (1.1 bar)']);
    assert.equal(await page.textContent('.conv[data-conv="dm:boiler"] .device-badge'), 'device');
    await screenshot(page, 'device-chat');
  } finally {
    await dev.endAsync();
    await ctx.close();
  }
});

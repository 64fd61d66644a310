// Shared pieces of the end-to-end tests: a real mqim server on ephemeral
// ports, Debian's Chromium through playwright-core, sign-in, MQTT devices.
//
// Each test file starts its own server (so files can run in any order) and
// stops it in `after`; nothing waits a fixed time, everything polls with a
// deadline (Playwright's auto-waiting expect-style helpers below).

import { spawn, execFile } from 'node:child_process';
import { mkdtemp, mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';
import { chromium } from 'playwright-core';
import { after, before } from 'node:test';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, '../../..');
export const screenshotDir = path.join(repoRoot, 'test-output', 'screenshots');

/** The password every test user gets. */
export const password = 'correct horse battery';

/**
 * Starts `mqim serve` on 127.0.0.1 with random ports and a fresh data dir.
 * @returns {Promise<{base: string, httpAddr: string, mqttPort: number, stop: () => Promise<void>, log: () => string}>}
 */
export async function startServer() {
  const bin = process.env.MQIM_BIN || path.join(repoRoot, 'mqim');
  const data = await mkdtemp(path.join(tmpdir(), 'mqim-e2e-'));
  const proc = spawn(bin, ['serve', '--data', data, '--http', '127.0.0.1:0', '--mqtt', '127.0.0.1:0'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const killOnExit = () => proc.kill('SIGKILL');
  process.on('exit', killOnExit);
  let out = '';
  let err = '';
  proc.stderr.on('data', (d) => {
    err += d;
  });
  const addrs = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not print its addresses in 20s:\n${out}\n${err}`)), 20_000);
    proc.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code}:\n${out}\n${err}`));
    });
    proc.stdout.on('data', (d) => {
      out += d;
      const http = out.match(/http listening on (\S+)/);
      const mq = out.match(/mqtt listening on (\S+)/);
      if (http && mq) {
        clearTimeout(timer);
        resolve({ http: http[1], mqtt: mq[1] });
      }
    });
  });
  proc.removeAllListeners('exit');
  const httpAddr = addrs.http.replace(/^https?:\/\//, '');
  const mqttPort = Number(addrs.mqtt.split(':').pop());
  return {
    base: `http://${httpAddr}`,
    httpAddr,
    mqttPort,
    log: () => out + err,
    async stop() {
      process.off('exit', killOnExit);
      if (proc.exitCode === null) {
        const exited = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGTERM');
        const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(t);
      }
      await rm(data, { recursive: true, force: true });
    },
  };
}

/** POST /api/v1/register. */
export async function register(base, user) {
  const res = await fetch(`${base}/api/v1/register`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ user, password }),
  });
  if (res.status !== 201) throw new Error(`register ${user}: ${res.status} ${await res.text()}`);
}

/** POST /api/v1/login; returns the token. */
export async function login(base, user) {
  const res = await fetch(`${base}/api/v1/login`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ user, password }),
  });
  if (res.status !== 200) throw new Error(`login ${user}: ${res.status} ${await res.text()}`);
  return (await res.json()).token;
}

export function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
}

/**
 * A page that records console errors and JS dialogs (alert() must never run:
 * message bodies are untrusted).
 */
export async function newPage(context) {
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  page.dialogs = [];
  page.errors = [];
  page.on('dialog', (d) => {
    page.dialogs.push(d.message());
    d.dismiss().catch(() => {});
  });
  page.on('pageerror', (e) => page.errors.push(String(e)));
  return page;
}

/** Signs in through the login form and waits until the MQTT connection is up. */
export async function signIn(page, base, user) {
  await page.goto(`${base}/`);
  await page.fill('#login-user', user);
  await page.fill('#login-password', password);
  await page.click('#login-submit');
  await waitOnline(page);
}

export async function waitOnline(page) {
  await page.waitForSelector('#conn-state[data-state="online"]', { timeout: 15_000 });
}

/**
 * Each of users signed in on a page in a browser context of its own, in
 * order. `contexts` are the contexts' options (default: all with `viewport`,
 * 1100x760).
 * @returns {Promise<{page: Object<string, import('playwright-core').Page>, ctx: Object<string, import('playwright-core').BrowserContext>, close: () => Promise<void>}>}
 */
export async function signedIn(browser, srv, users, {
  viewport = { width: 1100, height: 760 }, contexts = users.map(() => ({ viewport })),
} = {}) {
  const ctx = {};
  const page = {};
  for (const [i, u] of users.entries()) {
    ctx[u] = await browser.newContext(contexts[i]);
    page[u] = await newPage(ctx[u]);
    await signIn(page[u], srv.base, u);
  }
  return {
    page,
    ctx,
    async close() {
      for (const u of users) await ctx[u].close();
    },
  };
}

/**
 * Two people signed in as signedIn does (the same options) and, unless dm is
 * false, each in the DM with the other.
 * @returns {Promise<{pages: import('playwright-core').Page[], contexts: import('playwright-core').BrowserContext[], close: () => Promise<void>}>}
 */
export async function twoPeople(browser, srv, a, b, { dm = true, ...opts } = {}) {
  const { page, ctx, close } = await signedIn(browser, srv, [a, b], opts);
  if (dm) {
    await openDM(page[a], b);
    await openDM(page[b], a);
  }
  return { pages: [page[a], page[b]], contexts: [ctx[a], ctx[b]], close };
}

/** Opens (or starts) the DM with `peer` through the "New chat" dialog. */
export async function openDM(page, peer) {
  await page.click('#new-chat');
  await page.fill('#new-chat-user', peer);
  await page.press('#new-chat-user', 'Enter');
  await page.waitForSelector(`#chat-title:text-is("${peer}")`);
}

/** Types and sends a message in the open conversation. */
export async function send(page, text) {
  await page.fill('#composer', text);
  await page.press('#composer', 'Enter');
}

/** Texts of the messages shown in the open conversation, in display order. */
export function shownTexts(page) {
  return page.$$eval('#msg-list .msg .body', (els) => els.map((e) => e.textContent));
}

/** Polls `fn` until it returns a truthy value (or throws after `timeout` ms). */
export async function until(fn, { timeout = 10_000, interval = 50, message = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      const what = typeof message === 'function' ? await message() : message;
      throw new Error(`timed out waiting for ${what} (last: ${last})`);
    }
    await new Promise((r) => setTimeout(r, interval));
  }
}

/** Waits until the open conversation shows exactly `texts` (in order). */
export async function expectTexts(page, texts, timeout = 10_000) {
  await until(async () => JSON.stringify(await shownTexts(page)) === JSON.stringify(texts), {
    timeout,
    message: async () => `messages ${JSON.stringify(texts)}; shown ${JSON.stringify(await shownTexts(page).catch(() => []))}`,
  });
}

export async function screenshot(page, name) {
  await mkdir(screenshotDir, { recursive: true });
  await page.screenshot({ path: path.join(screenshotDir, `${name}.png`) });
}

/**
 * An MQTT device over TCP (MQTT.js in node), signed in with the password.
 * @returns {Promise<import('mqtt').MqttClient>}
 */
export function device(srv, user, dev = 'dev') {
  return mqtt.connectAsync(`mqtt://127.0.0.1:${srv.mqttPort}`, {
    clientId: `${user}:${dev}`,
    username: user,
    password,
    protocolVersion: 5,
    clean: true,
    reconnectPeriod: 0,
  });
}

/**
 * Publishes one message at QoS 1 and waits for the PUBACK; retries when the
 * server says we are over the rate limit (reason 0x97).
 */
export async function publish(client, topic, payload) {
  for (let attempt = 0; ; attempt++) {
    try {
      const pkt = await client.publishAsync(topic, payload, { qos: 1 });
      const rc = pkt && pkt.reasonCode;
      if (rc && rc >= 0x80) throw Object.assign(new Error(`puback ${rc}`), { code: rc });
      return;
    } catch (err) {
      if (err.code !== 0x97 || attempt > 50) throw err;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

/** Sends with the Debian mosquitto_pub client, as a device would. */
export function mosquittoPub(srv, user, dev, topic, message) {
  return new Promise((resolve, reject) => {
    execFile('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(srv.mqttPort), '-u', user, '-P', password,
      '-i', `${user}:${dev}`, '-t', topic, '-q', '1', '-m', message], { timeout: 10_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`mosquitto_pub: ${err.message} ${stderr}`));
      else resolve();
    });
  });
}

/**
 * The per-file fixture: before the tests, a server, a browser and the given
 * users; after them, both stopped. `set(srv, browser)` hands them to the file.
 */
export function serverAndBrowser(users, set) {
  let srv;
  let browser;
  before(async () => {
    srv = await startServer();
    browser = await launchBrowser();
    for (const u of users) await register(srv.base, u);
    set(srv, browser);
  });
  after(async () => {
    if (browser) await browser.close();
    if (srv) await srv.stop();
  });
}

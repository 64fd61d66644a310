// Network loss is noticed at once (issue 19, point 1): the browser's
// "offline" event, and a probe when the connection goes silent, both show
// "offline" and lead to a reconnect; the other side sees "last seen ...".

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  expectTexts, newPage, openDM, screenshot, send, signIn, twoPeople, until, waitOnline,
  serverAndBrowser,
} from './harness.js';

let srv;
let browser;

serverAndBrowser(['kim', 'lou', 'max', 'ned'], (s, b) => {
  srv = s;
  browser = b;
});

test('going offline is shown within 5 s, the contact sees "last seen", and it reconnects', { timeout: 90_000 }, async () => {
  const { pages: [kim, lou], contexts: [ctxK], close } = await twoPeople(browser, srv, 'kim', 'lou');
  await until(async () => (await lou.textContent('#chat-sub')) === 'online', { message: 'kim online for lou' });

  await ctxK.setOffline(true);
  const cut = Date.now();
  await kim.waitForSelector('#conn-state[data-state="offline"]', { timeout: 5000 });
  await kim.waitForSelector('#offline-banner:not([hidden])', { timeout: 5000 });
  assert.ok(Date.now() - cut < 5000, 'offline shown within 5 s');
  assert.match(await kim.textContent('#conn-state'), /no network/);
  await screenshot(kim, 'network-offline');
  // The page closed its socket: the server marks kim offline, lou sees when.
  // (A network that dies without a close is noticed by the server after
  // 1.5x the 60 s keepalive: docs/protocol.md "Presence".)
  await until(async () => /^last seen /.test(await lou.textContent('#chat-sub')), { timeout: 10_000, message: 'last seen for lou' });
  await screenshot(lou, 'network-last-seen');

  await send(kim, 'written offline');
  await ctxK.setOffline(false);
  await waitOnline(kim);
  await expectTexts(lou, ['written offline']);
  await until(async () => (await lou.textContent('#chat-sub')) === 'online', { message: 'kim online again' });
  assert.deepEqual(kim.errors, []);
  await close();
});

test('a connection that goes silent is probed, shown offline and replaced', { timeout: 60_000 }, async () => {
  const ctxM = await browser.newContext();
  const ctxN = await browser.newContext();
  const max = await newPage(ctxM);
  const ned = await newPage(ctxN);
  // max's WebSocket passes through here; "silent" swallows every frame, as a
  // network that drops packets without closing anything would.
  let silent = false;
  await max.routeWebSocket('**/mqtt', (ws) => {
    const server = ws.connectToServer();
    ws.onMessage((m) => { if (!silent) server.send(m); });
    server.onMessage((m) => { if (!silent) ws.send(m); });
  });
  await max.route(/\/api\/v1\/(stream|poll|publish)/, (route) => (silent ? route.abort() : route.continue()));
  await signIn(max, srv.base, 'max');
  await signIn(ned, srv.base, 'ned');
  await openDM(max, 'ned');
  await openDM(ned, 'max');

  silent = true;
  // A publish that is not acknowledged makes the page probe; no answer: offline.
  await send(max, 'into the void');
  await max.waitForSelector('#conn-state[data-state="offline"]', { timeout: 12_000 });
  assert.match(await max.getAttribute('#conn-state', 'title'), /no answer from the server/);
  await max.waitForSelector('#msg-list .msg.pending');
  await screenshot(max, 'network-silent');

  silent = false;
  await waitOnline(max);
  await expectTexts(ned, ['into the void'], 20_000);
  assert.deepEqual(max.errors, []);
  await ctxM.close();
  await ctxN.close();
});

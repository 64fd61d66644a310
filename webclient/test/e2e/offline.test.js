// Losing the connection: the state is shown, messages written meanwhile are
// queued (surviving a reload) and sent on reconnect, in order, exactly once.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  expectTexts, newPage, openDM, screenshot, send, shownTexts, signIn,
  until, waitOnline,
  serverAndBrowser,
} from './harness.js';

let srv;
let browser;

serverAndBrowser(['ivy', 'jon'], (s, b) => {
  srv = s;
  browser = b;
});

test('messages written offline are queued and sent on reconnect', { timeout: 90_000 }, async () => {
  const ctxI = await browser.newContext({ viewport: { width: 1100, height: 760 } });
  const ctxJ = await browser.newContext();
  const ivy = await newPage(ctxI);
  const jon = await newPage(ctxJ);

  // Every MQTT WebSocket of ivy's page goes through here, so the test can cut it.
  let offline = false;
  const live = [];
  await ivy.routeWebSocket('**/mqtt', (ws) => {
    live.push(ws);
    if (!offline) ws.connectToServer();
  });
  // Offline means the HTTP fallback (stream, poll, publish) is cut as well.
  await ivy.route(/\/api\/v1\/(stream|poll|publish)/, (route) => (offline ? route.abort() : route.continue()));
  await signIn(ivy, srv.base, 'ivy');
  await signIn(jon, srv.base, 'jon');
  await openDM(ivy, 'jon');
  await openDM(jon, 'ivy');
  await send(ivy, 'online message');
  await expectTexts(jon, ['online message']);

  // Cut the connection: the page says so, and keeps retrying.
  offline = true;
  for (const ws of live.splice(0)) await ws.close();
  await ivy.waitForSelector('#conn-state[data-state="offline"]');
  await ivy.waitForSelector('#offline-banner:not([hidden])');

  await send(ivy, 'queued 1');
  await send(ivy, 'queued 2');
  await ivy.waitForSelector('#msg-list .msg.pending >> nth=1');
  assert.deepEqual(await ivy.$$eval('#msg-list .msg.pending .body', (els) => els.map((e) => e.textContent)), ['queued 1', 'queued 2']);
  await screenshot(ivy, 'offline-queued');

  // The queue is in IndexedDB: a reload while still offline keeps it.
  await ivy.reload();
  await ivy.waitForSelector('#msg-list .msg.pending >> nth=1');
  await send(ivy, 'queued 3');
  await ivy.waitForSelector('#msg-list .msg.pending >> nth=2');
  assert.deepEqual(await shownTexts(jon), ['online message'], 'nothing went out while offline');

  // Back online: the queue goes out in order, once, and gets stamped.
  offline = false;
  for (const ws of live.splice(0)) await ws.close();
  await waitOnline(ivy);
  const all = ['online message', 'queued 1', 'queued 2', 'queued 3'];
  await expectTexts(jon, all, 20_000);
  await expectTexts(ivy, all, 20_000);
  await until(async () => (await ivy.$$('#msg-list .msg.pending')).length === 0, { message: 'pending cleared' });
  const seqs = await ivy.$$eval('#msg-list .msg', (els) => els.map((e) => Number(e.dataset.seq)));
  assert.deepEqual(seqs, [1, 2, 3, 4]);
  // And the server has each exactly once.
  const hist = await ivy.evaluate(async () => {
    const s = JSON.parse(sessionStorage.getItem('mqim.session'));
    const r = await fetch('/api/v1/history/dm/jon', { headers: { Authorization: `Bearer ${s.token}` } });
    return (await r.json()).messages.map((m) => m.body).reverse();
  });
  assert.deepEqual(hist, all);
  assert.deepEqual(ivy.errors, []);
  await ctxI.close();
  await ctxJ.close();
});

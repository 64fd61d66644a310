// WebSocket blocked (a proxy that breaks it): the client falls back to the
// HTTP stream (or long-polling without EventSource) and POST /publish, chats
// both ways with history and presence, and moves back up to the WebSocket
// when it works again, without losing or repeating a message.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  device, expectTexts, newPage, openDM, publish, screenshot, send, signIn,
  until,
  serverAndBrowser,
} from './harness.js';

let srv;
let browser;

serverAndBrowser(['kim', 'lee', 'max'], (s, b) => {
  srv = s;
  browser = b;
});

/**
 * Every WebSocket the page opens to /mqtt goes to a path that refuses the
 * upgrade while window.__wsBlocked is true, the way a proxy would break it.
 */
function blockWebSocket(noEventSource = false) {
  return ({ noEventSource }) => {
    window.__wsBlocked = true;
    const Real = window.WebSocket;
    window.WebSocket = class extends Real {
      constructor(url, protocols) {
        super(window.__wsBlocked ? String(url).replace(/\/mqtt$/, '/ws-blocked-by-proxy') : url, protocols);
      }
    };
    if (noEventSource) delete window.EventSource;
  };
}

const transportOf = (page) => page.getAttribute('#conn-state', 'data-transport');

test('with WebSocket blocked the client chats over SSE + POST, then moves back up', { timeout: 60_000 }, async () => {
  // A message that waits for kim before she ever signs in: history.
  const leeDev = await device(srv, 'lee', 'phone');
  await publish(leeDev, 'im/u/kim/dm/lee', JSON.stringify({ cid: 'early', body: 'before you came' }));

  const ctxK = await browser.newContext({ viewport: { width: 1100, height: 760 } });
  const ctxL = await browser.newContext();
  await ctxK.addInitScript(blockWebSocket(), { noEventSource: false });
  const kim = await newPage(ctxK);
  const lee = await newPage(ctxL);

  await signIn(kim, srv.base, 'kim');
  assert.equal(await transportOf(kim), 'sse');
  assert.match(await kim.textContent('#conn-state'), /HTTP stream/);
  await signIn(lee, srv.base, 'lee');
  assert.equal(await transportOf(lee), 'websocket');

  await openDM(kim, 'lee');
  await openDM(lee, 'kim');
  await expectTexts(kim, ['before you came']);
  // Presence both ways: the stream is one of kim's devices.
  await lee.waitForSelector('.chat-avatar .dot[data-status="online"]');
  await kim.waitForSelector('.chat-avatar .dot[data-status="online"]');

  await send(lee, 'hello over websocket');
  await expectTexts(kim, ['before you came', 'hello over websocket']);
  await send(kim, 'hi back over http');
  const sofar = ['before you came', 'hello over websocket', 'hi back over http'];
  await expectTexts(lee, sofar);
  await expectTexts(kim, sofar);
  await screenshot(kim, 'fallback-sse');

  // The WebSocket works again: while lee's device keeps talking, kim's page
  // moves up by itself.
  await kim.evaluate(() => {
    window.__wsBlocked = false;
  });
  const during = [];
  let i = 0;
  while ((await transportOf(kim)) !== 'websocket') {
    if (i > 40) throw new Error('kim never moved up to the WebSocket');
    const body = `during ${++i}`;
    await publish(leeDev, 'im/u/kim/dm/lee', JSON.stringify({ cid: `d${i}`, body }));
    during.push(body);
    await new Promise((r) => setTimeout(r, 250));
  }
  await publish(leeDev, 'im/u/kim/dm/lee', JSON.stringify({ cid: 'after', body: 'after the switch' }));
  await send(kim, 'kim on websocket');
  const all = [...sofar, ...during, 'after the switch', 'kim on websocket'];
  await expectTexts(kim, all, 15_000);
  await expectTexts(lee, all, 15_000);
  const seqs = await kim.$$eval('#msg-list .msg', (els) => els.map((e) => Number(e.dataset.seq)));
  assert.deepEqual(seqs, all.map((_, k) => k + 1), 'every message once, in seq order');
  assert.match(await kim.textContent('#conn-state'), /WebSocket/);
  assert.deepEqual(kim.errors, []);
  leeDev.end(true);
  await ctxK.close();
  await ctxL.close();
});

test('without EventSource the client long-polls', { timeout: 40_000 }, async () => {
  const ctx = await browser.newContext();
  await ctx.addInitScript(blockWebSocket(), { noEventSource: true });
  const max = await newPage(ctx);
  await signIn(max, srv.base, 'max');
  assert.equal(await transportOf(max), 'poll');
  assert.match(await max.textContent('#conn-state'), /HTTP polling/);
  const leeDev = await device(srv, 'lee', 'tablet');
  await openDM(max, 'lee');
  await publish(leeDev, 'im/u/max/dm/lee', 'polled to you');
  await expectTexts(max, ['polled to you']);
  await send(max, 'posted back');
  await expectTexts(max, ['polled to you', 'posted back']);
  await until(async () => (await max.$$('#msg-list .msg.pending')).length === 0, { message: 'stamped' });
  await max.waitForSelector('.chat-avatar .dot[data-status="online"]');
  assert.deepEqual(max.errors, []);
  leeDev.end(true);
  await ctx.close();
});

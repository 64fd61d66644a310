// History: the IndexedDB cache shows a conversation on reload before the
// network answers, sync brings what was missed, and scrolling up pages back
// to the first message.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  device, expectTexts, newPage, publish, screenshot, shownTexts, signIn,
  until, waitOnline,
  serverAndBrowser,
} from './harness.js';

let srv;
let browser;

serverAndBrowser(['eve', 'fay', 'gus', 'hal'], (s, b) => {
  srv = s;
  browser = b;
});

test('reload shows history from IndexedDB before the network answers, then sync tops it up', { timeout: 90_000 }, async () => {
  const fay = await device(srv, 'fay', 'phone');
  const first = Array.from({ length: 8 }, (_, i) => `before reload ${i + 1}`);
  for (const body of first) await publish(fay, 'im/u/eve/dm/fay', body);

  const ctx = await browser.newContext({ viewport: { width: 1100, height: 760 } });
  const page = await newPage(ctx);
  await signIn(page, srv.base, 'eve');
  await page.click('.conv[data-conv="dm:fay"] .conv-btn');
  await expectTexts(page, first);

  // Hold every API request and the MQTT WebSocket while the page reloads.
  let blocked = true;
  const held = [];
  await page.route('**/api/v1/**', (route) => {
    if (blocked) held.push(route);
    else route.continue();
  });
  const sockets = [];
  await page.routeWebSocket('**/mqtt', (ws) => {
    if (blocked) sockets.push(ws); // accepted but never answered: MQTT stays "connecting"
    else ws.connectToServer();
  });
  await page.reload();
  await expectTexts(page, first);
  assert.equal(held.filter((r) => r.request().url().includes('/sync')).length <= 1, true);
  assert.notEqual(await page.getAttribute('#conn-state', 'data-state'), 'online');
  assert.ok(await page.isVisible('.conv[data-conv="dm:fay"]'), 'recent list from localStorage');
  await screenshot(page, 'reload-from-cache');

  // While eve is cut off, fay writes more.
  const missed = ['while you were away 1', 'while you were away 2', 'while you were away 3'];
  for (const body of missed) await publish(fay, 'im/u/eve/dm/fay', body);
  await fay.endAsync();

  // Let the network answer: held requests go through, the stalled socket is
  // closed so the client reconnects (with backoff) to the real server.
  const synced = page.waitForResponse(async (res) => res.url().includes('/api/v1/sync') && (await res.text()).includes('while you were away 3'));
  blocked = false;
  for (const r of held) await r.continue();
  for (const ws of sockets) await ws.close();
  await waitOnline(page);
  await synced;
  await expectTexts(page, [...first, ...missed]);
  const ids = await page.$$eval('#msg-list .msg', (els) => els.map((e) => e.dataset.id));
  assert.equal(new Set(ids).size, ids.length, 'de-duplicated by id');
  assert.deepEqual(page.errors, []);
  await ctx.close();
});

test('scrolling up loads older pages until the start of the conversation', { timeout: 120_000 }, async () => {
  const total = 120;
  const hal = await device(srv, 'hal', 'seed');
  const gus = await device(srv, 'gus', 'seed');
  for (let i = 1; i <= total; i++) {
    // Mostly hal, every fifth from gus, so both sides of the DM appear.
    if (i % 5 === 0) await publish(gus, 'im/u/hal/dm/gus', `message ${i}`);
    else await publish(hal, 'im/u/gus/dm/hal', `message ${i}`);
  }
  await hal.endAsync();
  await gus.endAsync();

  const ctx = await browser.newContext({ viewport: { width: 1100, height: 760 } });
  const page = await newPage(ctx);
  const historyCalls = [];
  page.on('request', (r) => {
    if (r.url().includes('/api/v1/history/dm/hal')) historyCalls.push(new URL(r.url()).searchParams.get('before'));
  });
  await signIn(page, srv.base, 'gus');
  await page.click('.conv[data-conv="dm:hal"] .conv-btn');
  await page.waitForSelector('#msg-list .msg .body:text-is("message 120")');
  const firstPage = (await shownTexts(page)).length;
  assert.ok(firstPage < total, `opened with a page (${firstPage}), not everything`);
  assert.equal(await page.getAttribute('#history-marker', 'data-state'), 'more');
  await screenshot(page, 'history-newest');

  // Scroll to the top until the start marker appears, counting pages.
  const sizes = [firstPage];
  for (let i = 0; i < 10; i++) {
    if (await page.getAttribute('#history-marker', 'data-state') === 'start') break;
    const before = (await shownTexts(page)).length;
    // The oldest message shown: where it is once scrolled to the top, marked
    // to see that prepending keeps its row.
    const oldest = await page.$eval('#messages', (el) => {
      el.scrollTop = 0;
      const row = el.querySelector('#msg-list .msg');
      row.mqimMark = 'kept';
      return { text: row.querySelector('.body').textContent, y: row.getBoundingClientRect().top - el.getBoundingClientRect().top };
    });
    await until(async () => (await shownTexts(page)).length > before
      || (await page.getAttribute('#history-marker', 'data-state')) === 'start', { message: 'an older page' });
    sizes.push((await shownTexts(page)).length);
    // The reader keeps their place: not thrown back to the top or bottom,
    // the message they were reading where it was, in the same row.
    const top = await page.$eval('#messages', (el) => el.scrollTop);
    assert.ok(top > 0, 'scroll position kept after prepending');
    const after = await page.$eval('#messages', (el, text) => {
      const row = [...el.querySelectorAll('#msg-list .msg')].find((r) => r.querySelector('.body').textContent === text);
      return { mark: row.mqimMark, y: row.getBoundingClientRect().top - el.getBoundingClientRect().top };
    }, oldest.text);
    assert.equal(after.mark, 'kept', `the row of "${oldest.text}" is reused`);
    assert.ok(Math.abs(after.y - oldest.y) <= 2, `"${oldest.text}" stays in place: ${oldest.y}px from the top, now ${after.y}px`);
  }
  assert.equal(await page.getAttribute('#history-marker', 'data-state'), 'start');
  assert.ok(sizes.length >= 3, `loaded in pages: ${sizes.join(' -> ')}`);
  assert.ok(historyCalls.some((b) => b !== null), `older pages came from GET /history?before=… (${historyCalls})`);
  const texts = await shownTexts(page);
  assert.deepEqual(texts, Array.from({ length: total }, (_, i) => `message ${i + 1}`));
  const seqs = await page.$$eval('#msg-list .msg', (els) => els.map((e) => Number(e.dataset.seq)));
  assert.deepEqual(seqs, Array.from({ length: total }, (_, i) => i + 1));
  assert.match(await page.textContent('#history-marker'), /beginning of your conversation with hal/);
  await page.$eval('#messages', (el) => { el.scrollTop = 0; });
  await screenshot(page, 'history-start');

  // Reopened later, the pages fetched from the server come from IndexedDB.
  historyCalls.length = 0;
  await page.reload();
  await page.waitForSelector('#msg-list .msg .body:text-is("message 120")');
  for (let i = 0; i < 10 && (await page.getAttribute('#history-marker', 'data-state')) !== 'start'; i++) {
    const before = (await shownTexts(page)).length;
    await page.$eval('#messages', (el) => { el.scrollTop = 0; });
    await until(async () => (await shownTexts(page)).length > before
      || (await page.getAttribute('#history-marker', 'data-state')) === 'start', { message: 'an older page from cache' });
  }
  assert.equal((await shownTexts(page)).length, total);
  assert.deepEqual(historyCalls.filter((b) => b !== null), [], 'no network needed for cached pages');
  await ctx.close();
});

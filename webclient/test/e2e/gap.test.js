// A live message that never reaches the page (dropped on the WebSocket, as a
// broker drops past a full queue) leaves a hole in the conversation; the
// client notices the skipped seq and fills it from the server's sync feed,
// without a reconnect.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  device, expectTexts, newPage, openDM, publish, signIn,
  serverAndBrowser,
} from './harness.js';

let srv;
let browser;

serverAndBrowser(['ann', 'bob'], (s, b) => {
  srv = s;
  browser = b;
});

test('a hole in live delivery is filled via sync', { timeout: 60_000 }, async () => {
  const ctx = await browser.newContext({ viewport: { width: 1100, height: 760 } });
  let dropped = 0;
  await ctx.routeWebSocket(/\/mqtt$/, (ws) => {
    const server = ws.connectToServer();
    ws.onMessage((m) => server.send(m));
    server.onMessage((m) => {
      if (typeof m !== 'string' && Buffer.from(m).includes('DROPME')) {
        dropped++;
        return; // lost on the way: never delivered live
      }
      ws.send(m);
    });
  });
  const page = await newPage(ctx);
  await signIn(page, srv.base, 'ann');
  const bob = await device(srv, 'bob');
  try {
    await publish(bob, 'im/u/ann/dm/bob', 'one');
    await openDM(page, 'bob');
    await expectTexts(page, ['one']);
    await publish(bob, 'im/u/ann/dm/bob', 'DROPME two');
    await publish(bob, 'im/u/ann/dm/bob', 'three');
    await expectTexts(page, ['one', 'DROPME two', 'three']);
    assert.ok(dropped >= 1, 'the test dropped the live copy');
    const seqs = await page.$$eval('#msg-list .msg', (els) => els.map((e) => Number(e.dataset.seq)));
    assert.deepEqual(seqs, [1, 2, 3]);
  } finally {
    await bob.endAsync();
    await ctx.close();
  }
});

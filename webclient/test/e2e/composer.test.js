// The composer counts UTF-8 bytes against the server's limit (issue 19,
// point 2): 6000 CJK characters (18 000 bytes) are refused before sending,
// with the reason; a message that fits goes through.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  expectTexts, screenshot, twoPeople, until,
  serverAndBrowser,
} from './harness.js';

let srv;
let browser;

serverAndBrowser(['oli', 'pam'], (s, b) => {
  srv = s;
  browser = b;
});

test('the composer counts bytes against the limit from GET /api/v1/connect', { timeout: 60_000 }, async () => {
  const { pages: [oli, pam], close } = await twoPeople(browser, srv, 'oli', 'pam', {
    contexts: [{ viewport: { width: 1100, height: 760 } }, {}],
  });
  const limit = await oli.evaluate(async () => {
    const s = JSON.parse(sessionStorage.getItem('mqim.session'));
    const r = await fetch('/api/v1/connect', { headers: { Authorization: `Bearer ${s.token}` } });
    return (await r.json()).limits.body_bytes;
  });
  assert.equal(limit, 16384);

  // 6000 characters, 18 000 bytes: refused here, with the numbers.
  await oli.fill('#composer', '中'.repeat(6000));
  await oli.waitForSelector('#composer-count.over:not([hidden])');
  assert.equal(await oli.textContent('#composer-count'), 'Too long to send: 18 000 of 16 384 bytes. Shorten it, or send it as a file.');
  assert.ok(await oli.isDisabled('#send'));
  await oli.press('#composer', 'Enter');
  await screenshot(oli, 'composer-over-limit');
  assert.equal(await oli.$$eval('#msg-list .msg', (els) => els.length), 0, 'nothing was sent');

  // Near the limit a counter shows what is left; a message that fits goes.
  const fits = '中'.repeat(5000); // 15 000 bytes
  await oli.fill('#composer', fits);
  await until(async () => (await oli.textContent('#composer-count')) === '1 384 bytes left', { message: 'bytes left' });
  assert.ok(!(await oli.isDisabled('#send')));
  await oli.press('#composer', 'Enter');
  await expectTexts(pam, [fits]);
  await oli.waitForSelector('#composer-count', { state: 'hidden' });
  assert.deepEqual(oli.errors, []);
  await close();
});

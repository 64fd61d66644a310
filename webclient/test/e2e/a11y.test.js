// Accessibility basics (issue 19, point 8): axe-core's WCAG 2.1 A/AA rules
// find nothing on the sign-in page and the chat view, at desktop and phone
// size; the core loop (new chat, send, open a conversation) works from the
// keyboard alone.

import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { test } from 'node:test';
import {
  newPage, openDM, password, screenshot, send, shownTexts, signIn, until, waitOnline,
  serverAndBrowser,
} from './harness.js';

const axePath = createRequire(import.meta.url).resolve('axe-core/axe.min.js');

let srv;
let browser;

serverAndBrowser(['yan', 'zoe'], (s, b) => {
  srv = s;
  browser = b;
});

/** axe-core's WCAG 2.1 A and AA violations on the page as it is now. */
async function violations(page) {
  if (!(await page.evaluate(() => typeof window.axe === 'object'))) await page.addScriptTag({ path: axePath });
  const res = await page.evaluate(() => window.axe.run(document, {
    runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] },
  }));
  return res.violations.map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(' ')).slice(0, 5).join(', ')}`);
}

for (const [size, viewport] of [['desktop', { width: 1280, height: 800 }], ['phone', { width: 390, height: 844 }]]) {
  test(`no WCAG 2.1 A/AA violations, ${size}`, { timeout: 60_000 }, async () => {
    // The page's CSP rightly refuses injected scripts; axe is the test's, not the page's.
    const ctx = await browser.newContext({ viewport, bypassCSP: true });
    const yan = await newPage(ctx);
    await yan.goto(`${srv.base}/`);
    await yan.waitForSelector('#login-form');
    assert.deepEqual(await violations(yan), [], 'sign-in page');
    await signIn(yan, srv.base, 'yan');
    assert.deepEqual(await violations(yan), [], 'conversation list');
    await openDM(yan, 'zoe');
    await send(yan, `hello zoe (${size})`);
    await until(async () => (await shownTexts(yan)).includes(`hello zoe (${size})`), { message: 'message shown' });
    assert.deepEqual(await violations(yan), [], 'chat view');
    await ctx.close();
  });
}

test('the core loop from the keyboard alone', { timeout: 60_000 }, async () => {
  const ctxY = await browser.newContext({ viewport: { width: 1100, height: 760 } });
  const ctxZ = await browser.newContext();
  const yan = await newPage(ctxY);
  const zoe = await newPage(ctxZ);
  await signIn(zoe, srv.base, 'zoe');
  await openDM(zoe, 'yan');

  // Sign in: Tab through the form, Enter submits.
  await yan.goto(`${srv.base}/`);
  await yan.waitForSelector('#login-user:focus');
  await yan.keyboard.type('yan');
  await yan.keyboard.press('Tab');
  await yan.keyboard.type(password);
  await yan.keyboard.press('Enter');
  await waitOnline(yan);

  // Tab to "New chat", Enter opens the dialog with the input focused.
  const focusedId = () => yan.evaluate(() => document.activeElement && document.activeElement.id);
  for (let i = 0; i < 10 && (await focusedId()) !== 'new-chat'; i++) await yan.keyboard.press('Tab');
  assert.equal(await focusedId(), 'new-chat');
  await yan.keyboard.press('Enter');
  await yan.waitForSelector('#new-chat-user:focus');
  await yan.keyboard.type('zoe');
  await yan.keyboard.press('Enter');
  await yan.waitForSelector('#chat-title:text-is("zoe")');
  // The composer has focus after opening a conversation from the dialog.
  await yan.waitForSelector('#composer:focus');
  await yan.keyboard.type('typed, not clicked');
  await yan.keyboard.press('Enter');
  await until(async () => (await shownTexts(zoe)).includes('typed, not clicked'), { message: 'zoe got it' });
  // Focus is visible (a ring) on whatever the keyboard reaches: here the attach button.
  await yan.keyboard.press('Shift+Tab');
  await screenshot(yan, 'keyboard-focus');
  assert.deepEqual(yan.errors, []);
  await ctxY.close();
  await ctxZ.close();
});

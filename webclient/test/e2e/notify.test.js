// Notifications (issue 19, point 6): the unread count in the tab title, a
// desktop notification for a message that arrives while the tab is hidden,
// none for a muted conversation, and silent ones (no sound by default).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  newPage, openDM, screenshot, send, signIn, until,
  serverAndBrowser,
} from './harness.js';

let srv;
let browser;

serverAndBrowser(['uma', 'vic'], (s, b) => {
  srv = s;
  browser = b;
});

/** Records every Notification the page shows, and lets the test hide the tab. */
function instrument() {
  window.shownNotes = [];
  const Real = window.Notification;
  window.Notification = class extends Real {
    constructor(title, opts = {}) {
      super(title, opts);
      window.shownNotes.push({ title, body: opts.body, tag: opts.tag, silent: opts.silent });
    }
  };
  let hidden = false;
  Object.defineProperty(document, 'visibilityState', { get: () => (hidden ? 'hidden' : 'visible') });
  window.setHidden = (v) => {
    hidden = v;
    document.dispatchEvent(new Event('visibilitychange'));
  };
}

test('title count, a notification while hidden, none when muted', { timeout: 60_000 }, async () => {
  const ctxU = await browser.newContext();
  const ctxV = await browser.newContext({ viewport: { width: 1100, height: 760 }, permissions: ['notifications'] });
  const uma = await newPage(ctxU);
  const vic = await newPage(ctxV);
  await vic.addInitScript(instrument);
  await signIn(uma, srv.base, 'uma');
  await signIn(vic, srv.base, 'vic');
  await openDM(uma, 'vic');
  assert.equal(await vic.title(), 'mqim');

  // vic looks at no conversation: two messages count in the title.
  await send(uma, 'first');
  await send(uma, 'second');
  await until(async () => (await vic.title()) === '(2) mqim', { message: 'title (2) mqim', timeout: 10_000 });
  assert.deepEqual(await vic.evaluate(() => window.shownNotes), [], 'no notification while visible');

  // Hidden tab: a desktop notification, silent, one per conversation (tag).
  await vic.evaluate(() => window.setHidden(true));
  await send(uma, 'are you there?');
  await until(async () => (await vic.evaluate(() => window.shownNotes.length)) === 1, { message: 'a notification' });
  assert.deepEqual(await vic.evaluate(() => window.shownNotes), [{ title: 'uma', body: 'are you there?', tag: 'dm:uma', silent: true }]);
  await until(async () => (await vic.title()) === '(3) mqim', { message: 'title (3) mqim' });

  // Muted: no notification, and it leaves the title count.
  await vic.evaluate(() => window.setHidden(false));
  await vic.click('.conv[data-conv="dm:uma"] .conv-btn');
  await vic.waitForSelector('#chat-title:text-is("uma")');
  await until(async () => (await vic.title()) === 'mqim', { message: 'read: title back to mqim' });
  await vic.click('#mute');
  await vic.waitForSelector('#mute[aria-pressed="true"]');
  await vic.evaluate(() => { location.hash = '#/'; }); // away from the conversation
  await vic.evaluate(() => window.setHidden(true));
  await send(uma, 'muted one');
  await vic.waitForSelector('.conv.silenced[data-conv="dm:uma"] .badge');
  await screenshot(vic, 'notify-muted');
  assert.equal(await vic.evaluate(() => window.shownNotes.length), 1, 'no notification when muted');
  assert.equal(await vic.title(), 'mqim', 'a muted conversation is not in the title count');
  assert.deepEqual(vic.errors, []);
  await ctxU.close();
  await ctxV.close();
});

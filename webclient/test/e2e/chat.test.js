// 1:1 chat between two browsers, untrusted bodies, a device over MQTT, and
// the phone-sized layout.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  device, expectTexts, mosquittoPub, newPage, openDM, password, publish, screenshot, send,
  shownTexts, signIn, twoPeople, until, waitOnline,
  serverAndBrowser,
} from './harness.js';

let srv;
let browser;

serverAndBrowser(['alice', 'bob', 'dave', 'erin'], (s, b) => {
  srv = s;
  browser = b;
});

test('two users chat 1:1 both ways, with presence, typing and receipts', { timeout: 90_000 }, async () => {
  const ctxA = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const ctxB = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const alice = await newPage(ctxA);
  const bob = await newPage(ctxB);
  await signIn(alice, srv.base, 'alice');
  await screenshot(alice, 'desktop-empty');
  await signIn(bob, srv.base, 'bob');

  await openDM(alice, 'bob');
  await openDM(bob, 'alice');
  // Presence: each sees the other online, from the retained presence topic.
  await alice.waitForSelector('.chat-avatar .dot[data-status="online"]');
  assert.equal(await alice.textContent('#chat-sub'), 'online');
  await bob.waitForSelector('.chat-avatar .dot[data-status="online"]');

  // Typing: alice types, bob sees it; it goes away when she sends.
  await alice.fill('#composer', 'Hi Bob');
  await alice.type('#composer', '!');
  await bob.waitForSelector('#typing:not([hidden])');
  assert.match(await bob.textContent('#typing'), /alice is typing/);
  assert.equal(await bob.textContent('#chat-sub'), 'typing…');
  await alice.press('#composer', 'Enter');
  await expectTexts(bob, ['Hi Bob!']);
  await bob.waitForSelector('#typing', { state: 'hidden' });
  await expectTexts(alice, ['Hi Bob!']);

  // And back.
  await send(bob, 'Hello Alice, how are you?');
  await expectTexts(alice, ['Hi Bob!', 'Hello Alice, how are you?']);
  // The list is updated, not rebuilt: the row of a message that did not
  // change is the same element after the next one arrives.
  const marked = '#msg-list .msg:has(.body:text-is("Hi Bob!"))';
  await bob.$eval(marked, (el) => { el.mqimMark = 'kept'; });
  await send(alice, 'Great, thanks. Lunch at https://example.com/menu?');
  await expectTexts(bob, ['Hi Bob!', 'Hello Alice, how are you?', 'Great, thanks. Lunch at https://example.com/menu?']);
  assert.equal(await bob.$eval(marked, (el) => el.mqimMark), 'kept', 'the row of an unchanged message is reused');

  // Receipts: bob has the chat open, so alice's messages become "read".
  await alice.waitForSelector('#msg-list .msg.mine:last-child[data-state="read"]', { timeout: 10_000 });
  // Links are anchors that cannot reach back into the page.
  const link = await bob.$eval('#msg-list .msg:last-child a', (a) => ({ href: a.href, rel: a.rel, target: a.target }));
  assert.equal(link.href, 'https://example.com/menu');
  assert.match(link.rel, /noopener/);

  // Messages are ordered by seq in both pages.
  const seqs = await alice.$$eval('#msg-list .msg', (els) => els.map((e) => Number(e.dataset.seq)));
  assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b));
  await screenshot(alice, 'desktop-dm');

  // A second device of alice's (a second browser context) gets carbons of
  // what the first one sends.
  const ctxA2 = await browser.newContext({ viewport: { width: 1000, height: 700 } });
  const alice2 = await newPage(ctxA2);
  await signIn(alice2, srv.base, 'alice');
  await alice2.click('.conv[data-conv="dm:bob"] .conv-btn');
  await expectTexts(alice2, await shownTexts(alice));
  await send(alice, 'sent from my laptop');
  await expectTexts(alice2, ['Hi Bob!', 'Hello Alice, how are you?', 'Great, thanks. Lunch at https://example.com/menu?', 'sent from my laptop']);
  await ctxA2.close();

  // Bob leaves: alice sees him go offline.
  await ctxB.close();
  await alice.waitForSelector('.chat-avatar .dot[data-status="offline"]', { timeout: 15_000 });
  assert.match(await alice.textContent('#chat-sub'), /^last seen /);
  assert.deepEqual(alice.errors, []);
  await ctxA.close();
});

test('a body with HTML renders as text', { timeout: 60_000 }, async () => {
  const { pages: [alice, bob], close } = await twoPeople(browser, srv, 'alice', 'bob', { contexts: [{}, {}], dm: false });
  await openDM(bob, 'alice');
  await bob.click('.conv[data-conv="dm:alice"] .conv-btn');

  const evil = '<img src=x onerror=alert(1)>';
  await openDM(alice, 'bob');
  await send(alice, evil);
  // The same body as raw (non-JSON) MQTT payload from a device.
  const dev = await device(srv, 'alice', 'xss');
  await publish(dev, 'im/u/bob/dm/alice', '<script>alert(2)</script> javascript:alert(3)');
  await dev.endAsync();

  await bob.waitForFunction((t) => [...document.querySelectorAll('#msg-list .msg .body')].some((e) => e.textContent === t), evil);
  await bob.waitForSelector('#msg-list .msg .body:text("<script>alert(2)</script>")');
  // Visible as text, and nothing was parsed into elements.
  assert.ok(await bob.isVisible(`#msg-list .body:text-is("${evil}")`));
  assert.equal(await bob.$$eval('#msg-list img, #msg-list script', (els) => els.length), 0);
  const jsLinks = await bob.$$eval('#msg-list .msg .body', (els) => els.filter((e) => e.textContent.includes('javascript:')).map((e) => e.querySelectorAll('a').length));
  assert.deepEqual(jsLinks, [0], 'javascript: is not linked');
  // The list preview is text too.
  await alice.waitForSelector('#msg-list .msg .body:text("<script>")');
  assert.equal(await alice.$$eval('#conv-list img', (els) => els.length), 0);
  assert.deepEqual(bob.dialogs, []);
  assert.deepEqual(alice.dialogs, []);
  await close();
});

test('a message from a device over MQTT shows up live', { timeout: 60_000 }, async () => {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const erin = await newPage(ctx);
  await signIn(erin, srv.base, 'erin');

  // A new conversation appears in the list with an unread badge.
  await mosquittoPub(srv, 'dave', 'sensor', 'im/u/erin/dm/dave', 'hello from mosquitto_pub');
  await erin.waitForSelector('.conv[data-conv="dm:dave"] .badge:text-is("1")');
  assert.match(await erin.textContent('.conv[data-conv="dm:dave"] .conv-preview'), /hello from mosquitto_pub/);

  // With the conversation open, further messages append live.
  await erin.click('.conv[data-conv="dm:dave"] .conv-btn');
  await expectTexts(erin, ['hello from mosquitto_pub']);
  await until(async () => !(await erin.$('.conv[data-conv="dm:dave"] .badge')), { message: 'unread badge cleared' });
  const dev = await device(srv, 'dave', 'phone');
  await publish(dev, 'im/u/erin/dm/dave', JSON.stringify({ cid: 'd-1', type: 'text', body: 'and one from MQTT.js' }));
  await expectTexts(erin, ['hello from mosquitto_pub', 'and one from MQTT.js']);
  // The device gets erin's reply.
  const got = new Promise((resolve) => dev.on('message', (topic, payload) => {
    const m = JSON.parse(payload.toString());
    if (topic === 'im/u/dave/dm/erin' && m.body === 'hi device') resolve(m);
  }));
  await dev.subscribeAsync('im/u/dave/#', { qos: 1 });
  await send(erin, 'hi device');
  const m = await got;
  assert.equal(m.from, 'erin');
  assert.equal(m.to, 'dave');
  await dev.endAsync();

  // The token is in sessionStorage, never a cookie; signing out forgets it
  // and the local copy of the messages.
  assert.deepEqual(await ctx.cookies(), []);
  assert.ok(await erin.evaluate(() => sessionStorage.getItem('mqim.session')));
  await erin.click('#sign-out');
  await erin.waitForSelector('#login-form');
  assert.equal(await erin.evaluate(() => sessionStorage.getItem('mqim.session')), null);
  assert.equal(await erin.evaluate(() => localStorage.getItem('mqim.recent.erin')), null);
  await erin.reload();
  await erin.waitForSelector('#login-form');
  await ctx.close();
});

test('phone-sized layout shows one pane at a time', { timeout: 60_000 }, async () => {
  const ctx = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
  const page = await newPage(ctx);
  await page.goto(`${srv.base}/`);
  await screenshot(page, 'phone-login');
  // Sign up through the form: it registers, signs in and connects.
  await page.click('#login-switch');
  await page.fill('#login-user', 'pat');
  await page.fill('#login-password', 'short');
  await page.click('#login-submit');
  assert.match(await page.textContent('#login-error'), /at least 8/);
  await page.fill('#login-password', password);
  await page.click('#login-submit');
  await waitOnline(page);
  assert.equal(await page.textContent('#me-name'), 'pat');
  await page.click('#sign-out');
  await page.click('#login-switch');
  await page.fill('#login-user', 'pat');
  await page.fill('#login-password', password);
  await page.click('#login-submit');
  await page.waitForSelector('#login-error:text("taken")');
  await signIn(page, srv.base, 'alice');
  await page.waitForSelector('.conv[data-conv="dm:bob"]');
  assert.ok(await page.isVisible('#conv-list'));
  assert.ok(!(await page.isVisible('#chat')));
  const listOverflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(listOverflow <= 0, `conversation list is ${listOverflow}px wider than the viewport`);
  await screenshot(page, 'phone-list');
  await page.click('.conv[data-conv="dm:bob"] .conv-btn');
  await page.waitForSelector('#msg-list .msg');
  assert.ok(!(await page.isVisible('#conv-list')));
  assert.ok(await page.isVisible('#composer'));
  // Nothing overflows the width of the phone.
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `page is ${overflow}px wider than the viewport`);
  await screenshot(page, 'phone-chat');
  await page.click('#back');
  await page.waitForSelector('#conv-list', { state: 'visible' });
  await ctx.close();
});

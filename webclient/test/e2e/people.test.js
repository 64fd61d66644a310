// People, not ids (issue 20): a profile edited in the browser (display name,
// avatar upload) shows to a peer, a stranger's DM waits as a message request
// under dm_policy contacts and is accepted, and block/unblock from the
// conversation menu refuses and then lets through the blocked user's DMs
// (and hides its group messages meanwhile).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  login, newPage, openDM, register, screenshot, send, signIn, twoPeople, until,
  serverAndBrowser,
} from './harness.js';

let srv;
let browser;

serverAndBrowser(['alice', 'bob'], (s, b) => {
  srv = s;
  browser = b;
});

// A 1x1 PNG: the server decodes it and stores its own 128x128 re-encoding.
const png = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==', 'base64');

async function api(method, path, token, body) {
  const res = await fetch(`${srv.base}/api/v1${path}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

const msgTexts = (page) => page.$$eval('#msg-list .msg .body', (els) => els.map((e) => e.textContent));

test('profile, avatar, a message request accepted, block and unblock', { timeout: 120_000 }, async () => {
  const { pages: [alice, bob], close } = await twoPeople(browser, srv, 'alice', 'bob', { dm: false });

  // alice edits her profile: a name and a picture.
  await alice.click('#profile-btn');
  await alice.fill('#profile-name', 'Alice Liddell');
  await alice.setInputFiles('#profile-avatar', { name: 'me.png', mimeType: 'image/png', buffer: png });
  await alice.click('#profile-save');
  await alice.waitForSelector('#profile-dialog', { state: 'detached' });
  await alice.waitForSelector('#me-name:text-is("Alice Liddell")');
  await alice.waitForSelector('.me-avatar img.avatar-img[src^="blob:"]');
  const atok = await login(srv.base, 'alice');
  const view = await api('GET', '/users/alice', atok);
  assert.equal(view.body.display_name, 'Alice Liddell');
  assert.match(view.body.avatar, /^\/api\/v1\/users\/alice\/avatar\?v=/);

  // bob takes DMs from his contacts only.
  await bob.click('#profile-btn');
  assert.equal(await bob.textContent('#profile-id'), '@bob');
  await bob.selectOption('#profile-dm-policy', 'contacts');
  await bob.click('#profile-save');
  await bob.waitForSelector('#profile-dialog', { state: 'detached' });
  const btok = await login(srv.base, 'bob');
  assert.equal((await api('GET', '/me/settings', btok)).body.dm_policy, 'contacts');

  // alice, a stranger to bob, writes: it waits as a request, under her name.
  await openDM(alice, 'bob');
  await send(alice, 'hello bob, it is alice');
  await alice.waitForSelector('#msg-list .msg.mine:not(.pending)');
  const req = '#conv-list .conv.request[data-conv="dm:alice"]';
  await bob.waitForSelector(`${req} .conv-name:text-is("Alice Liddell")`);
  await bob.waitForSelector('#requests-head:text-is("Message requests · 1")');
  await bob.waitForSelector(`${req} .avatar img.avatar-img`);
  await screenshot(bob, 'people-request');
  await bob.click(`${req} .conv-btn`);
  await bob.waitForSelector('#chat-title:text-is("Alice Liddell")');
  await bob.waitForSelector('#request-banner:not([hidden])');
  assert.match(await bob.textContent('#request-banner'), /Alice Liddell \(@alice\) is not in your contacts/);
  await until(async () => (await msgTexts(bob)).includes('hello bob, it is alice'), { message: 'the held DM read from history' });
  await bob.click('#request-accept');
  await bob.waitForSelector('#request-banner', { state: 'hidden' });
  await bob.waitForSelector('#requests-head', { state: 'detached' });
  assert.deepEqual((await api('GET', '/requests', btok)).body.requests, []);
  assert.ok((await api('GET', '/contacts', btok)).body.contacts.some((c) => c.user === 'alice'));
  // Now her DMs arrive live.
  await send(alice, 'accepted?');
  await until(async () => (await msgTexts(bob)).includes('accepted?'), { message: 'a live DM after accepting' });

  // A group they share (made before the block: after it she cannot add him).
  const grp = await api('POST', '/groups', atok, { id: 'tea', name: 'Tea party', members: ['bob'] });
  assert.equal(grp.status, 201, JSON.stringify(grp.body));
  await bob.waitForSelector('#conv-list .conv[data-conv="g:tea"]');

  // bob blocks alice from the conversation menu: her DM is refused.
  await bob.click('#conv-menu');
  assert.match(await bob.textContent('#person-id'), /@alice/);
  await bob.click('#person-block:text-is("Block")');
  await bob.waitForSelector('#person-block:text-is("Unblock")');
  await bob.keyboard.press('Escape');
  await bob.waitForSelector('#blocked-note:not([hidden])');
  await send(alice, 'can you hear me?');
  await alice.waitForSelector('#msg-list .msg.failed');
  // In the group, her messages are hidden from bob; his own show.
  assert.equal((await api('POST', '/publish', atok, { topic: 'im/g/tea', payload: 'from the blocked one' })).status, 200);
  assert.equal((await api('POST', '/publish', btok, { topic: 'im/g/tea', payload: 'fence from bob' })).status, 200);
  await bob.click('#conv-list .conv[data-conv="g:tea"] .conv-btn');
  await until(async () => (await msgTexts(bob)).includes('fence from bob'), { message: 'bob sees his own group message' });
  assert.ok(!(await msgTexts(bob)).includes('from the blocked one'), 'a blocked sender shows in the group');

  // Unblocked (inline, in the DM): her next DM arrives.
  await bob.click('#conv-list .conv[data-conv="dm:alice"] .conv-btn');
  await bob.click('#unblock-inline');
  await bob.waitForSelector('#blocked-note', { state: 'hidden' });
  await send(alice, 'back again');
  await until(async () => (await msgTexts(bob)).includes('back again'), { message: 'a DM after unblocking' });
  assert.ok(!(await msgTexts(bob)).includes('can you hear me?'), 'the refused DM was never delivered');
  // A profile change reaches her contact live (the open chat's title).
  assert.equal((await api('PUT', '/me/profile', atok, { display_name: 'Alice L.' })).status, 200);
  await bob.waitForSelector('#chat-title:text-is("Alice L.")');
  await screenshot(bob, 'people-unblocked');
  assert.deepEqual(alice.errors, []);
  assert.deepEqual(bob.errors, []);
  await close();
});

test('a held group invitation is joined from the requests section', { timeout: 60_000 }, async () => {
  await register(srv.base, 'carol');
  const ctok = await login(srv.base, 'carol');
  const atok = await login(srv.base, 'alice');
  assert.equal((await api('PUT', '/me/settings', ctok, { dm_policy: 'contacts' })).status, 200);
  const ctx = await browser.newContext({ viewport: { width: 1100, height: 760 } });
  const carol = await newPage(ctx);
  await signIn(carol, srv.base, 'carol');
  const grp = await api('POST', '/groups', atok, { id: 'croquet', name: 'Croquet', members: ['carol'] });
  assert.deepEqual([grp.status, grp.body.invited], [201, ['carol']]);
  const item = '#conv-list .request-item[data-request="g:croquet"]';
  await carol.waitForSelector(`${item} .conv-name:text-is("Croquet")`);
  assert.match(await carol.textContent(`${item} .conv-preview`), /\(@alice\) invites you/);
  await carol.click(`${item} button:text-is("Join")`);
  await carol.waitForSelector(item, { state: 'detached' });
  await carol.waitForSelector('#conv-list .conv[data-conv="g:croquet"]');
  assert.equal((await api('POST', '/publish', atok, { topic: 'im/g/croquet', payload: 'welcome, carol' })).status, 200);
  await carol.click('#conv-list .conv[data-conv="g:croquet"] .conv-btn');
  await until(async () => (await msgTexts(carol)).includes('welcome, carol'), { message: 'the group message after joining' });
  assert.deepEqual(carol.errors, []);
  await ctx.close();
});

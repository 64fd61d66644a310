// A group of three in three browser contexts; one member is away (its page
// closed) while the others talk, and on return sees every message in order.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  expectTexts, newPage, screenshot, send, shownTexts, signedIn, signIn,
  serverAndBrowser,
} from './harness.js';

let srv;
let browser;

serverAndBrowser(['ann', 'ben', 'cat', 'dan'], (s, b) => {
  srv = s;
  browser = b;
});

test('group of three: an offline member catches up in order; members added and removed', { timeout: 120_000 }, async () => {
  const { page, ctx, close } = await signedIn(browser, srv, ['ann', 'ben', 'cat']);

  // ann creates the group with ben, then adds cat from the members dialog.
  await page.ann.click('#new-group');
  await page.ann.fill('#new-group-name', 'Weekend trip');
  await page.ann.fill('#new-group-members', 'ben');
  await page.ann.click('#new-group-submit');
  await page.ann.waitForSelector('#chat-title:text-is("Weekend trip")');
  const conv = await page.ann.$eval('#conv-list .conv.active', (el) => el.dataset.conv);
  assert.match(conv, /^g:/);
  await page.ann.click('#group-info');
  await page.ann.fill('#add-member-user', 'cat');
  await page.ann.click('#add-member');
  await page.ann.waitForSelector('#member-list .member[data-user="cat"]');
  assert.deepEqual(await page.ann.$$eval('#member-list .member', (els) => els.map((e) => e.dataset.user).sort()), ['ann', 'ben', 'cat']);
  await screenshot(page.ann, 'group-members');
  await page.ann.keyboard.press('Escape');

  await send(page.ann, 'Who is in for Saturday?');
  for (const u of ['ben', 'cat']) {
    await page[u].waitForSelector(`.conv[data-conv="${conv}"] .badge`);
    // The name comes with GET /groups/{gid}, right after the first message.
    await page[u].waitForSelector(`.conv[data-conv="${conv}"] .conv-name:text-is("Weekend trip")`);
    await page[u].click(`.conv[data-conv="${conv}"] .conv-btn`);
    await expectTexts(page[u], ['Who is in for Saturday?']);
  }

  // cat goes away; the others talk.
  await page.cat.close();
  const said = ['Who is in for Saturday?'];
  const lines = [['ben', 'Me! 🚲'], ['ann', 'Great, leaving at 9'], ['ben', 'I will bring coffee'],
    ['ann', 'Perfect'], ['ben', 'See you there'], ['ann', 'cat, are you coming?']];
  for (const [u, text] of lines) {
    await send(page[u], text);
    said.push(text);
    // Wait for each to be stamped so the order is the order they were said.
    await expectTexts(page.ann, said);
  }
  await expectTexts(page.ben, said);

  // cat comes back (a new tab: signs in again, same browser, same device id).
  page.cat = await newPage(ctx.cat);
  await page.cat.setViewportSize({ width: 390, height: 844 }); // back on the phone
  await signIn(page.cat, srv.base, 'cat');
  await page.cat.waitForSelector(`.conv[data-conv="${conv}"] .badge:text-is("6")`);
  assert.match(await page.cat.textContent(`.conv[data-conv="${conv}"] .conv-preview`), /ann: cat, are you coming\?/);
  await screenshot(page.cat, 'phone-group-unread');
  await page.cat.click(`.conv[data-conv="${conv}"] .conv-btn`);
  await expectTexts(page.cat, said);
  const seqs = await page.cat.$$eval('#msg-list .msg', (els) => els.map((e) => Number(e.dataset.seq)));
  assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b), 'ordered by seq');
  assert.equal(new Set(seqs).size, seqs.length, 'no duplicates');
  const senders = await page.cat.$$eval('#msg-list .msg .sender', (els) => els.map((e) => e.textContent));
  assert.ok(senders.includes('ann') && senders.includes('ben'), 'group messages name their sender');
  await send(page.cat, 'Yes! On my way');
  said.push('Yes! On my way');
  await expectTexts(page.ann, said);
  await expectTexts(page.ben, said);
  await screenshot(page.cat, 'group-chat');

  // ann (the owner) removes ben; ben can no longer post.
  await page.ann.click('#group-info');
  await page.ann.waitForSelector('#member-list .member[data-user="ben"]');
  await page.ann.click('#member-list [data-remove="ben"]');
  await page.ann.waitForSelector('#member-list .member[data-user="ben"]', { state: 'detached' });
  await page.ann.keyboard.press('Escape');
  // ben's open view learns it at once (group event), without trying to post.
  await page.ben.waitForSelector('#left-note', { state: 'visible' });
  assert.ok(!(await page.ben.isVisible('#composer')), 'no composer in a group one has left');
  await send(page.ann, 'just us now');
  said.push('just us now');
  await expectTexts(page.cat, said);
  for (const u of ['ann', 'ben', 'cat']) assert.deepEqual(page[u].errors, [], `${u}: page errors`);
  await close();
});

// Groups as members live them (issue 19, point 4): a new group shows for its
// members before any message, typing in the group shows, the owner hands the
// group over instead of a "Leave" that always failed, and a removed member's
// open view turns read-only at once; the owner renames and deletes it.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  expectTexts, screenshot, send, signedIn, until,
  serverAndBrowser,
} from './harness.js';

let srv;
let browser;

serverAndBrowser(['gia', 'hal', 'ida'], (s, b) => {
  srv = s;
  browser = b;
});

test('group events, group typing, owner transfer, live removal, rename, delete', { timeout: 90_000 }, async () => {
  const { page, close } = await signedIn(browser, srv, ['gia', 'hal', 'ida']);
  await page.gia.click('#new-group');
  await page.gia.fill('#new-group-name', 'Band');
  await page.gia.fill('#new-group-members', 'hal, ida');
  await page.gia.click('#new-group-submit');
  await page.gia.waitForSelector('#chat-title:text-is("Band")');
  const conv = await page.gia.$eval('#conv-list .conv.active', (el) => el.dataset.conv);

  // No message yet, and it is in hal's and ida's lists with its name.
  for (const u of ['hal', 'ida']) {
    await page[u].waitForSelector(`.conv[data-conv="${conv}"] .conv-name:text-is("Band")`);
    await page[u].click(`.conv[data-conv="${conv}"] .conv-btn`);
    await page[u].waitForSelector('#chat-title:text-is("Band")');
  }

  // Typing in the group reaches the other members, with who it is.
  await page.hal.type('#composer', 'Rehearsal');
  for (const u of ['gia', 'ida']) {
    await page[u].waitForSelector('#typing:not([hidden])');
    assert.match(await page[u].textContent('#typing'), /hal is typing/);
  }
  await screenshot(page.ida, 'group-typing');
  await page.hal.press('#composer', 'Enter');
  await expectTexts(page.gia, ['Rehearsal']);
  await page.gia.waitForSelector('#typing', { state: 'hidden' });

  // The owner is not offered "Leave": the handover instead.
  await page.gia.click('#group-info');
  await page.gia.waitForSelector('#member-list .member[data-user="hal"]');
  assert.equal(await page.gia.$('#member-list [data-remove="gia"]'), null, 'no Leave for the owner');
  await page.gia.waitForSelector('#owner-note:not([hidden])');
  await screenshot(page.gia, 'group-owner-dialog');
  await page.gia.click('#member-list [data-owner="hal"]');
  await page.gia.waitForSelector('#member-list .member[data-user="hal"] .tag:text-is("owner")');
  // Now gia may leave like any member.
  await page.gia.waitForSelector('#member-list [data-remove="gia"]:text-is("Leave")');
  assert.equal(await page.gia.$('#member-list [data-remove="hal"]'), null, 'a member cannot remove others');
  await page.gia.keyboard.press('Escape');

  // hal, the owner now, removes ida: ida's open view turns read-only at once.
  await page.hal.click('#group-info');
  await page.hal.click('#member-list [data-remove="ida"]');
  await page.hal.waitForSelector('#member-list .member[data-user="ida"]', { state: 'detached' });
  await page.hal.keyboard.press('Escape');
  await page.ida.waitForSelector('#left-note', { state: 'visible' });
  assert.ok(!(await page.ida.isVisible('#composer')), 'no composer after removal');
  await screenshot(page.ida, 'group-removed-live');
  // gia's header follows the member list.
  await until(async () => /2 members/.test(await page.gia.textContent('#chat-sub')), { message: 'gia sees 2 members' });

  // The owner renames the group: gia's sidebar follows. A member has no
  // rename or delete.
  await page.gia.click('#group-info');
  await page.gia.waitForSelector('#member-list .member[data-user="hal"]');
  assert.ok(!(await page.gia.isVisible('#owner-tools')), 'a member is not offered rename or delete');
  await page.gia.keyboard.press('Escape');
  await page.hal.click('#group-info');
  await page.hal.waitForSelector('#owner-tools:not([hidden])');
  await page.hal.fill('#rename-group-name', 'Band 2');
  await page.hal.click('#rename-group');
  await page.gia.waitForSelector(`.conv[data-conv="${conv}"] .conv-name:text-is("Band 2")`);
  // Deleting asks twice; then the group leaves hal's list and gia's view
  // turns read-only.
  await page.hal.click('#delete-group');
  await page.hal.waitForSelector('#delete-group-confirm:not([hidden])');
  await screenshot(page.hal, 'group-delete-confirm');
  await page.hal.click('#delete-group-confirm');
  await page.hal.waitForSelector(`.conv[data-conv="${conv}"]`, { state: 'detached' });
  await page.gia.waitForSelector('#left-note', { state: 'visible' });
  await screenshot(page.gia, 'group-deleted-live');
  for (const u of ['gia', 'hal', 'ida']) assert.deepEqual(page[u].errors, [], `${u}: page errors`);
  await close();
});

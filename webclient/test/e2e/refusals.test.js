// A new chat checks that the user exists, and refusals read as one sentence
// (issue 19, point 3).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  newPage, openDM, screenshot, send, signIn,
  serverAndBrowser,
} from './harness.js';

let srv;
let browser;

serverAndBrowser(['quin', 'rae'], (s, b) => {
  srv = s;
  browser = b;
});

test('an unknown user is refused in the dialog; a known one opens; group refusals are sentences', { timeout: 60_000 }, async () => {
  const ctx = await browser.newContext({ viewport: { width: 1100, height: 760 } });
  const quin = await newPage(ctx);
  await signIn(quin, srv.base, 'quin');

  await quin.click('#new-chat');
  await quin.fill('#new-chat-user', 'ghost');
  await quin.press('#new-chat-user', 'Enter');
  await quin.waitForSelector('#new-chat-dialog .form-error:text-is("There is no user called “ghost”.")');
  await screenshot(quin, 'new-chat-unknown-user');
  assert.equal(await quin.$$eval('#conv-list .conv', (els) => els.length), 0, 'nothing added to the sidebar');
  // Fix the name in the same dialog: it opens.
  await quin.fill('#new-chat-user', 'rae');
  await quin.press('#new-chat-user', 'Enter');
  await quin.waitForSelector('#chat-title:text-is("rae")');
  assert.deepEqual(await quin.$$eval('#conv-list .conv', (els) => els.map((e) => e.dataset.conv)), ['dm:rae']);

  // A group with a member who does not exist: the server's refusal, as a sentence.
  await quin.click('#new-group');
  await quin.fill('#new-group-name', 'Book club');
  await quin.fill('#new-group-members', 'rae, nobody');
  await quin.click('#new-group-submit');
  await quin.waitForSelector('#new-group-dialog .form-error:text-is("There is no user called “nobody”.")');
  await quin.keyboard.press('Escape');

  // Sending to a user who does not exist (an old link): the bubble says why.
  await quin.goto(`${srv.base}/#/c/dm:nobody`);
  await quin.waitForSelector('#chat-title:text-is("nobody")');
  await send(quin, 'hello?');
  await quin.waitForSelector('#msg-list .msg.failed .failed-note');
  assert.match(await quin.textContent('#msg-list .msg.failed .failed-note'), /^There is no user called “nobody”\. /);
  await screenshot(quin, 'send-unknown-user');
  await openDM(quin, 'rae'); // the dialog still works after a reload
  assert.deepEqual(quin.errors, []);
  await ctx.close();
});

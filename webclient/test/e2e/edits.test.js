// Messages people correct, answer, react to and find again (issue 15): reply
// (quote, click to the original), edit ("edited"), delete for everyone,
// reactions, and search (one query in Chinese) with a jump into a long
// conversation; the same state after a reload (IndexedDB) and on a new device
// (sync and history), and a refused edit that reaches nobody.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  device, expectTexts, login, newPage, openDM, publish, screenshot, send, shownTexts, signIn,
  twoPeople, until,
  serverAndBrowser,
} from './harness.js';

let srv;
let browser;

serverAndBrowser(['amy', 'ben', 'cat', 'dan'], (s, b) => {
  srv = s;
  browser = b;
});

/** The row of the open conversation whose body is exactly `text`. */
const row = (text) => `#msg-list .msg:has(.body:text-is("${text}"))`;

/** Clicks action `act` (reply, react, edit, delete) of the message showing `text`. */
async function act(page, text, name) {
  await page.hover(`${row(text)} .bubble`);
  await page.click(`${row(text)} .act-${name}`);
}

async function react(page, text, emoji) {
  await act(page, text, 'react');
  await page.click(`${row(text)} .react-picker .pick[data-emoji="${emoji}"]`);
}

/** The reactions under the message showing `text`: {emoji: "count:users"} (compared in any order). */
function reactionsOf(page, text) {
  return page.$$eval(`${row(text)} .reaction`, (els) => Object.fromEntries(els.map((e) => [e.dataset.emoji, `${e.querySelector('.count').textContent}:${e.title}`])));
}

async function expectReactions(page, text, want) {
  const sorted = (o) => JSON.stringify(Object.entries(o).sort());
  await until(async () => sorted(await reactionsOf(page, text)) === sorted(want), {
    message: async () => `reactions ${JSON.stringify(want)} on "${text}"; shown ${JSON.stringify(await reactionsOf(page, text).catch(() => null))}`,
  });
}

/** What a bubble shows besides its text: quote, edited mark, retracted. */
async function expectState(page, text, want) {
  const got = () => page.$eval(row(text), (el) => ({
    quote: el.querySelector('.quote .quote-text')?.textContent || '',
    edited: !!el.querySelector('.meta .edited'),
    retracted: el.classList.contains('retracted'),
  }));
  await until(async () => {
    const g = await got();
    return Object.entries(want).every(([k, v]) => g[k] === v);
  }, { message: async () => `"${text}" to be ${JSON.stringify(want)}; is ${JSON.stringify(await got().catch((e) => String(e)))}` });
}

/** Runs a message search from the sidebar box; returns the hits' texts. */
async function search(page, q, scope = 'all') {
  await page.fill('#msg-search', q);
  await page.selectOption('#search-scope', scope);
  await page.press('#msg-search', 'Enter');
  await page.waitForFunction(() => {
    const s = document.querySelector('#search-status');
    return s && s.textContent && s.textContent !== 'Searching…';
  });
  return page.$$eval('#search-results .search-hit .hit-text', (els) => els.map((e) => e.textContent));
}

test('reply, edit, react, delete for everyone: live, after a reload, on a new device', { timeout: 120_000 }, async () => {
  const { pages: [amy, ben], close } = await twoPeople(browser, srv, 'amy', 'ben', { viewport: { width: 1200, height: 800 } });

  await send(amy, '今天天气很好');
  await send(amy, 'Lunch at noon?');
  await expectTexts(ben, ['今天天气很好', 'Lunch at noon?']);

  // Reply: ben answers amy's question; both show the quote.
  await act(ben, 'Lunch at noon?', 'reply');
  assert.match(await ben.textContent('#compose-mode'), /Replying to amy: Lunch at noon\?/);
  await send(ben, 'Yes, the usual place');
  await expectTexts(amy, ['今天天气很好', 'Lunch at noon?', 'Yes, the usual place']);
  await expectState(amy, 'Yes, the usual place', { quote: 'Lunch at noon?' });
  await expectState(ben, 'Yes, the usual place', { quote: 'Lunch at noon?' });
  assert.ok(await ben.isHidden('#compose-mode'), 'the composer is back to plain messages');
  // A click on the quote brings the original into view, marked.
  await amy.click(`${row('Yes, the usual place')} .quote`);
  await amy.waitForSelector(`${row('Lunch at noon?')}.focused`);

  // Edit: amy corrects her question; both see the new text, marked edited,
  // and the quote of ben's reply follows.
  await act(amy, 'Lunch at noon?', 'edit');
  assert.equal(await amy.inputValue('#composer'), 'Lunch at noon?');
  await amy.fill('#composer', 'Lunch at 12:30?');
  await amy.press('#composer', 'Enter');
  for (const p of [amy, ben]) {
    await expectTexts(p, ['今天天气很好', 'Lunch at 12:30?', 'Yes, the usual place']);
    await expectState(p, 'Lunch at 12:30?', { edited: true });
    await expectState(p, 'Yes, the usual place', { quote: 'Lunch at 12:30?' });
  }
  assert.equal(await ben.$(`${row('Lunch at 12:30?')} .act-edit`), null, 'nobody else may edit it');

  // Reactions: one each, counted with who.
  // A reaction changes its message's row only: the row beside it is the same element.
  await amy.$eval(row('Yes, the usual place'), (el) => { el.mqimMark = 'kept'; });
  await react(ben, '今天天气很好', '👍');
  await expectReactions(amy, '今天天气很好', { '👍': '1:ben' });
  assert.equal(await amy.$eval(row('Yes, the usual place'), (el) => el.mqimMark), 'kept', 'the unchanged row is reused');
  await react(amy, '今天天气很好', '👍');
  await expectReactions(ben, '今天天气很好', { '👍': '2:ben, amy' });
  await react(amy, '今天天气很好', '🎉'); // replaces amy's 👍
  await expectReactions(ben, '今天天气很好', { '👍': '1:ben', '🎉': '1:amy' });
  await ben.click(`${row('今天天气很好')} .reaction[data-emoji="👍"]`); // ben takes his back
  await expectReactions(amy, '今天天气很好', { '🎉': '1:amy' });
  await expectReactions(ben, '今天天气很好', { '🎉': '1:amy' });
  assert.equal(await amy.getAttribute(`${row('今天天气很好')} .reaction[data-emoji="🎉"]`, 'aria-pressed'), 'true');

  // Delete for everyone: amy asks first, then the bubble says so and the text is gone.
  await send(amy, 'oops, wrong chat');
  await expectTexts(ben, ['今天天气很好', 'Lunch at 12:30?', 'Yes, the usual place', 'oops, wrong chat']);
  assert.equal(await ben.$(`${row('oops, wrong chat')} .act-delete`), null, 'not ben\'s to delete in a DM');
  await act(amy, 'oops, wrong chat', 'delete');
  await amy.click('#retract-cancel');
  await expectTexts(amy, ['今天天气很好', 'Lunch at 12:30?', 'Yes, the usual place', 'oops, wrong chat']);
  await act(amy, 'oops, wrong chat', 'delete');
  await amy.click('#retract-confirm');
  const final = ['今天天气很好', 'Lunch at 12:30?', 'Yes, the usual place', 'message deleted'];
  for (const p of [amy, ben]) {
    await expectTexts(p, final);
    await expectState(p, 'message deleted', { retracted: true });
    assert.equal(await p.$$eval('#msg-list', (els) => els[0].textContent.includes('wrong chat')), false);
  }
  await screenshot(amy, 'edits-dm');

  // A refused edit (ben's device edits amy's message) reaches nobody: ben's
  // devices get the error notice, amy's text stays.
  const ids = await amy.$$eval('#msg-list .msg', (els) => els.map((e) => e.dataset.id));
  const dev = await device(srv, 'ben', 'phone');
  const refused = new Promise((resolve) => dev.on('message', (topic, payload) => {
    if (topic === 'im/u/ben/error') resolve(JSON.parse(payload.toString()));
  }));
  await dev.subscribeAsync('im/u/ben/#', { qos: 1 });
  await assert.rejects(dev.publishAsync('im/u/amy/dm/ben', JSON.stringify({ type: 'edit', ref: ids[1], body: 'hacked' }), { qos: 1 }),
    (err) => err.code === 0x87, 'PUBACK 0x87 not authorized');
  const notice = await refused;
  assert.equal(notice.code, 'forbidden');
  await dev.endAsync();
  await ben.waitForSelector('.toast.error');
  await send(ben, 'after the refusal'); // anything the refused edit did would show before this
  await expectTexts(amy, [...final, 'after the refusal']);
  assert.deepEqual(await shownTexts(amy), [...final, 'after the refusal']);

  // A reload shows the same from IndexedDB alone: every API request and the
  // MQTT WebSocket are held while it is checked.
  const want = [...final, 'after the refusal'];
  const expectFinal = async (p) => {
    await expectTexts(p, want);
    await expectState(p, 'Lunch at 12:30?', { edited: true });
    await expectState(p, 'Yes, the usual place', { quote: 'Lunch at 12:30?' });
    await expectState(p, 'message deleted', { retracted: true });
    await expectReactions(p, '今天天气很好', { '🎉': '1:amy' });
  };
  await ben.route('**/api/v1/**', () => {}); // never answered
  await ben.routeWebSocket('**/mqtt', () => {}); // accepted, never answered
  await ben.reload();
  await ben.click('.conv[data-conv="dm:amy"] .conv-btn');
  await expectFinal(ben);
  assert.notEqual(await ben.getAttribute('#conn-state', 'data-state'), 'online');

  // A new device of amy's (no cache): the same, from sync and history.
  const ctxA2 = await browser.newContext({ viewport: { width: 1000, height: 700 } });
  const amy2 = await newPage(ctxA2);
  await signIn(amy2, srv.base, 'amy');
  await amy2.click('.conv[data-conv="dm:ben"] .conv-btn');
  await expectFinal(amy2);
  assert.equal(await amy2.getAttribute(`${row('今天天气很好')} .reaction`, 'aria-pressed'), 'true');

  for (const p of [amy, ben, amy2]) assert.deepEqual(p.errors, []);
  await ctxA2.close();
  await close();
});

test('search all conversations or the open one (Chinese too), and jump to a result in context', { timeout: 150_000 }, async () => {
  // dan writes cat a long conversation with one early message worth finding.
  const dan = await device(srv, 'dan', 'phone');
  const filler = (i) => `filler message ${i}`;
  await publish(dan, 'im/u/cat/dm/dan', 'first of all');
  await publish(dan, 'im/u/cat/dm/dan', 'the needle is in the haystack');
  for (let i = 1; i <= 90; i++) await publish(dan, 'im/u/cat/dm/dan', filler(i));
  await publish(dan, 'im/u/cat/dm/dan', JSON.stringify({ type: 'text', body: '明天天气怎么样？' }));
  await dan.endAsync();

  // cat signs in on a new device: only the newest messages are cached.
  const ctx = await browser.newContext({ viewport: { width: 1200, height: 800 } });
  const cat = await newPage(ctx);
  await signIn(cat, srv.base, 'cat');
  await openDM(cat, 'amy');
  await send(cat, '今天天气很好，我们去公园吧');
  await send(cat, 'the weather is FINE today');
  await cat.waitForSelector(row('the weather is FINE today'));

  // Chinese: two characters from the middle of a sentence, in every conversation.
  const hits = await search(cat, '天气');
  assert.deepEqual(hits, ['今天天气很好，我们去公园吧', '明天天气怎么样？']);
  assert.deepEqual(await cat.$$eval('#search-results .search-hit mark', (els) => els.map((e) => e.textContent)), ['天气', '天气']);
  assert.ok(await cat.isHidden('#conv-list'), 'results replace the list while they show');
  // Only the open conversation (amy's).
  assert.deepEqual(await search(cat, '天气', 'conv'), ['今天天气很好，我们去公园吧']);
  // Words, case-insensitively.
  assert.deepEqual(await search(cat, 'weather fine'), ['the weather is FINE today']);
  assert.match(await search(cat, 'nothing like this').then(() => cat.textContent('#search-status')), /No messages match/);

  // A result far back in dan's conversation: it opens there, with the
  // messages around it loaded from history, the hit marked.
  assert.deepEqual(await search(cat, 'needle'), ['the needle is in the haystack']);
  await cat.click('#search-results .search-hit .hit-btn');
  await cat.waitForSelector('#chat-title:text-is("dan")');
  await cat.waitForSelector(`${row('the needle is in the haystack')}.focused`);
  const shown = await shownTexts(cat);
  assert.ok(shown.includes('first of all') && shown.includes(filler(20)), `context around the hit: ${shown.slice(0, 5)}…`);
  assert.ok(!shown.includes('明天天气怎么样？'), 'the newest messages are not in the window yet');
  assert.ok(await cat.isVisible('#jump-latest'));
  assert.ok(await cat.isVisible(row('the needle is in the haystack')), 'the hit is scrolled into view');
  await screenshot(cat, 'search-jump');
  // Scrolling down loads the newer messages, up to the end.
  await until(async () => {
    await cat.$eval('#messages', (s) => { s.scrollTop = s.scrollHeight; });
    return (await shownTexts(cat)).includes('明天天气怎么样？');
  }, { timeout: 20_000, message: 'scrolling down to the newest message' });
  const all = await shownTexts(cat);
  assert.deepEqual(all, ['first of all', 'the needle is in the haystack', ...Array.from({ length: 90 }, (_, i) => filler(i + 1)), '明天天气怎么样？']);
  await cat.waitForSelector('#jump-latest', { state: 'hidden' });

  // A search for a deleted message finds nothing; an edited one by its new words only.
  await openDM(cat, 'amy');
  await send(cat, 'typo in this mesage');
  await cat.waitForSelector(`${row('typo in this mesage')}[data-id]:not([data-id=""])`);
  // Up in the empty composer edits the last message of one's own; Escape leaves, Up again.
  await cat.press('#composer', 'ArrowUp');
  assert.equal(await cat.inputValue('#composer'), 'typo in this mesage');
  await cat.press('#composer', 'Escape');
  assert.equal(await cat.inputValue('#composer'), '');
  assert.ok(await cat.isHidden('#compose-mode'));
  await cat.press('#composer', 'ArrowUp');
  assert.match(await cat.textContent('#compose-mode'), /Editing: typo in this mesage/);
  await cat.fill('#composer', 'fixed in this message');
  await cat.press('#composer', 'Enter');
  await expectState(cat, 'fixed in this message', { edited: true });
  await send(cat, 'secret to take back');
  await act(cat, 'secret to take back', 'delete');
  await cat.click('#retract-confirm');
  await expectState(cat, 'message deleted', { retracted: true });
  await until(async () => (await search(cat, 'fixed')).length === 1, { message: 'the edited message found by its new text' });
  assert.deepEqual(await search(cat, 'mesage'), []);
  assert.deepEqual(await search(cat, 'secret'), []);
  assert.deepEqual(cat.errors, []);
  await ctx.close();
});

test('in a group the owner may delete anyone\'s message; every member\'s device drops it', { timeout: 90_000 }, async () => {
  const token = await login(srv.base, 'cat');
  const res = await fetch(`${srv.base}/api/v1/groups`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
    body: JSON.stringify({ id: 'picnic', name: 'Picnic', members: ['dan', 'amy'] }),
  });
  assert.equal(res.status, 201, await res.text());
  const dan = await device(srv, 'dan', 'laptop');
  const got = [];
  dan.on('message', (topic, payload) => {
    if (topic === 'im/u/dan/g/picnic') got.push(JSON.parse(payload.toString()));
  });
  await dan.subscribeAsync('im/u/dan/#', { qos: 1 });

  const ctx = await browser.newContext({ viewport: { width: 1200, height: 800 } });
  const cat = await newPage(ctx);
  await signIn(cat, srv.base, 'cat');
  await cat.click('.conv[data-conv="g:picnic"] .conv-btn');
  await publish(dan, 'im/g/picnic', JSON.stringify({ type: 'text', body: 'buy my crypto' }));
  await publish(dan, 'im/g/picnic', JSON.stringify({ type: 'text', body: 'I bring sandwiches' }));
  await expectTexts(cat, ['buy my crypto', 'I bring sandwiches']);
  // cat replies to dan in the group, and removes the spam as the owner.
  await act(cat, 'I bring sandwiches', 'reply');
  await send(cat, 'great, thanks');
  await expectState(cat, 'great, thanks', { quote: 'I bring sandwiches' });
  await act(cat, 'buy my crypto', 'delete');
  assert.match(await cat.textContent('#retract-dialog'), /dan's message for every member/);
  await cat.click('#retract-confirm');
  await expectTexts(cat, ['message deleted', 'I bring sandwiches', 'great, thanks']);
  // dan's device got the reply (with reply_to) and the retraction live.
  await until(() => got.some((m) => m.type === 'retract'), { message: 'the retraction on dan\'s device' });
  const spam = got.find((m) => m.body === 'buy my crypto');
  const sandwiches = got.find((m) => m.body === 'I bring sandwiches');
  assert.equal(got.find((m) => m.body === 'great, thanks').reply_to, sandwiches.id);
  assert.deepEqual(got.filter((m) => m.type === 'retract').map((m) => [m.from, m.ref]), [['cat', spam.id]]);
  await dan.endAsync();
  assert.deepEqual(cat.errors, []);
  await ctx.close();
});

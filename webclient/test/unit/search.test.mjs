// Message search (src/search.js): scopes, highlighting, paging.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SearchQuery, clampQuery, excerpt, highlight, searchScope, terms } from '../../src/search.js';

test('searchScope turns a conversation id into the conv parameter', () => {
  assert.equal(searchScope('dm:bob'), 'dm/bob');
  assert.equal(searchScope('g:g1'), 'g/g1');
  assert.equal(searchScope(''), '');
});

test('terms: lowercased words without repeats', () => {
  assert.deepEqual(terms('  Lunch  lunch MENU '), ['lunch', 'menu']);
  assert.deepEqual(terms('天气'), ['天气']);
});

test('highlight marks every word, case-insensitively, and CJK inside a run of text', () => {
  const marked = (t, q) => highlight(t, q).map((p) => (p.hit ? `[${p.text}]` : p.text)).join('');
  assert.equal(marked('Lunch at noon? lunch!', 'LUNCH'), '[Lunch] at noon? [lunch]!');
  assert.equal(marked('今天天气很好', '天气'), '今天[天气]很好');
  assert.equal(marked('go to the menu', 'menu go'), '[go] to the [menu]');
  assert.equal(marked('aaa', 'aa'), '[aaa]', 'overlapping hits join');
  assert.equal(marked('nothing here', 'zz'), 'nothing here');
  assert.deepEqual(highlight('', 'x'), []);
  // Length-changing lowercase: nothing marked rather than the wrong letters.
  assert.equal(marked('İstanbul', 'stan'), 'İstanbul');
});

test('excerpt keeps the hit of a long message in view', () => {
  const long = `${'word '.repeat(100)}needle ${'more '.repeat(100)}`;
  const e = excerpt(long, 'needle', 60);
  assert.match(e, /needle/);
  assert.ok(e.startsWith('…') && e.endsWith('…'));
  assert.equal(excerpt('short text', 'x'), 'short text');
});

test('SearchQuery pages with before = the last id, and adds conv', async () => {
  const calls = [];
  const pages = [
    { messages: [{ id: 'm9', seq: 9, from: 'bob', to: 'alice', body: 'a' }, { id: 'm5', seq: 5, from: 'alice', group: 'g1', body: 'b' }], more: true },
    { messages: [{ id: 'm5', seq: 5, from: 'alice', group: 'g1', body: 'b' }, { id: 'm2', seq: 2, from: 'alice', to: 'bob', body: 'c' }, { id: 'm1', seq: 1, retracted: true }], more: false },
  ];
  const api = { search: async (q, o) => { calls.push({ q, ...o }); return pages[calls.length - 1]; } };
  const s = new SearchQuery(api, 'alice', '  hello world ', 'g:g1');
  const first = await s.next(2);
  assert.deepEqual(first.map((m) => [m.id, m.conv]), [['m9', 'dm:bob'], ['m5', 'g:g1']]);
  assert.equal(s.more, true);
  const second = await s.next(2);
  assert.deepEqual(second.map((m) => m.id), ['m2'], 'repeats and retracted results dropped');
  assert.equal(s.more, false);
  assert.deepEqual(await s.next(), [], 'no request past the end');
  assert.deepEqual(calls, [
    { q: 'hello world', conv: 'g/g1', before: undefined, limit: 2 },
    { q: 'hello world', conv: 'g/g1', before: 'm5', limit: 2 },
  ]);
  assert.deepEqual(await new SearchQuery(api, 'alice', '   ').next(), [], 'an empty query asks nothing');
  assert.equal(calls.length, 2);
});

test('clampQuery keeps whole characters within the 256 bytes the server takes', () => {
  assert.equal(clampQuery('  a b  '), 'a b');
  const cjk = clampQuery('天'.repeat(100)); // 3 bytes each
  assert.equal(cjk, '天'.repeat(85));
  assert.equal(clampQuery(`${'x'.repeat(255)}天`), 'x'.repeat(255));
});

// The composer's byte count (src/limits.js): bytes of UTF-8, as the server counts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkBody, utf8Length } from '../../src/limits.js';

test('UTF-8 lengths', () => {
  for (const [s, n] of [['', 0], ['hi', 2], ['é', 2], ['中', 3], ['😀', 4], ['中'.repeat(6000), 18000], ['\ud800', 3]]) {
    assert.equal(utf8Length(s), n, JSON.stringify(s.slice(0, 4)));
  }
});

test('near and over the limit', () => {
  const cases = [
    // text, limit, near, over
    ['a'.repeat(79), 100, false, false],
    ['a'.repeat(80), 100, true, false],
    ['a'.repeat(100), 100, true, false],
    ['a'.repeat(101), 100, true, true],
    ['中'.repeat(34), 100, true, true], // 34 characters, 102 bytes
    ['中'.repeat(6000), 16384, true, true],
  ];
  for (const [text, limit, near, over] of cases) {
    const c = checkBody(text, limit);
    assert.equal(c.near, near, `${text.length} chars near ${limit}`);
    assert.equal(c.over, over, `${text.length} chars over ${limit}`);
  }
  assert.equal(checkBody('中'.repeat(6000), 16384).text, 'Too long to send: 18 000 of 16 384 bytes. Shorten it, or send it as a file.');
  assert.equal(checkBody('a'.repeat(90), 100).text, '10 bytes left');
  assert.equal(checkBody('hi', 100).text, '');
});

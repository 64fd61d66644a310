// The message list's keyed rows (src/keyedlist.js), on a stand-in for the DOM
// that counts what is done to it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KeyedList } from '../../src/keyedlist.js';

/** A parent element: an array of children with the four operations KeyedList uses. */
class FakeParent {
  constructor() {
    this.children = [];
    this.ops = 0;
  }

  get firstChild() {
    return this.children[0] || null;
  }

  insertBefore(node, ref) {
    this.ops++;
    if (node.parent) node.parent.children.splice(node.parent.children.indexOf(node), 1);
    const at = ref ? this.children.indexOf(ref) : this.children.length;
    assert.ok(at >= 0, 'ref is a child');
    this.children.splice(at, 0, node);
    node.parent = this;
    return node;
  }
}

class FakeNode {
  constructor(key, sig) {
    this.key = key;
    this.sig = sig;
    this.parent = null;
  }

  get nextSibling() {
    const c = this.parent.children;
    return c[c.indexOf(this) + 1] || null;
  }

  remove() {
    if (!this.parent) return;
    this.parent.ops++;
    this.parent.children.splice(this.parent.children.indexOf(this), 1);
    this.parent = null;
  }
}

/** Items from "key" or "key=sig" strings. */
const items = (...specs) => specs.map((s) => {
  const [key, sig = ''] = s.split('=');
  return { key, sig, build: () => new FakeNode(key, sig) };
});

const shown = (p) => p.children.map((n) => (n.sig ? `${n.key}=${n.sig}` : n.key));

test('rows are built once and kept while their signature stays', () => {
  const cases = [
    { name: 'first render', from: [], to: ['a', 'b', 'c'], built: 3, ops: 3 },
    { name: 'nothing changed', from: ['a', 'b', 'c'], to: ['a', 'b', 'c'], built: 0, ops: 0 },
    { name: 'append', from: ['a', 'b'], to: ['a', 'b', 'c'], built: 1, ops: 1 },
    { name: 'prepend a page', from: ['c', 'd'], to: ['a', 'b', 'c', 'd'], built: 2, ops: 2 },
    { name: 'one row changes', from: ['a', 'b=1', 'c'], to: ['a', 'b=2', 'c'], built: 1, ops: 2 },
    { name: 'remove from the middle', from: ['a', 'b', 'c'], to: ['a', 'c'], built: 0, ops: 1 },
    { name: 'pending row becomes stamped', from: ['a', 'cid:x'], to: ['a', 'id:x'], built: 1, ops: 2 },
    { name: 'one row moves up', from: ['a', 'b', 'c'], to: ['c', 'a', 'b'], built: 0, ops: 1 },
    { name: 'all gone', from: ['a', 'b'], to: [], built: 0, ops: 2 },
    { name: 'replace all', from: ['a', 'b'], to: ['x', 'y'], built: 2, ops: 4 },
  ];
  for (const c of cases) {
    const p = new FakeParent();
    const list = new KeyedList(p);
    list.update(items(...c.from));
    const before = new Map(p.children.map((n) => [n.key, n]));
    p.ops = 0;
    const ch = list.update(items(...c.to));
    assert.deepEqual(shown(p), c.to, c.name);
    assert.equal(ch.built, c.built, `${c.name}: built`);
    assert.equal(p.ops, c.ops, `${c.name}: DOM operations`);
    assert.equal(ch.inserted + ch.removed, c.ops, `${c.name}: changes counted`);
    for (const n of p.children) {
      const old = before.get(n.key);
      if (old && old.sig === n.sig) assert.equal(n, old, `${c.name}: ${n.key} is the same node`);
    }
  }
});

test('a repeated key gets its own row', () => {
  const p = new FakeParent();
  const list = new KeyedList(p);
  list.update(items('a=1', 'a=2', 'b'));
  assert.deepEqual(shown(p), ['a=1', 'a=2', 'b']);
  const second = p.children[1];
  const ch = list.update(items('a=1', 'a=2', 'b', 'c'));
  assert.equal(p.children[1], second);
  assert.equal(ch.built, 1);
});

test('any order of updates ends with exactly the rows asked for', () => {
  // A small deterministic shuffle: every step is checked against the wanted list.
  let seed = 7;
  const rand = (n) => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed % n;
  };
  const p = new FakeParent();
  const list = new KeyedList(p);
  for (let step = 0; step < 200; step++) {
    const want = [];
    for (let k = 0; k < 12; k++) if (rand(3)) want.push(`k${k}=${rand(2)}`);
    for (let i = want.length - 1; i > 0 && rand(4) === 0; i--) {
      const j = rand(i + 1);
      [want[i], want[j]] = [want[j], want[i]];
    }
    list.update(items(...want));
    assert.deepEqual(shown(p), want, `step ${step}`);
  }
});

// Names, lists and message requests (src/people.js), over a fake API.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { People } from '../../src/people.js';

function fakeApi(routes) {
  const calls = [];
  return {
    calls,
    async request(method, path, body) {
      calls.push(`${method} ${path}${body ? ` ${JSON.stringify(body)}` : ''}`);
      const r = routes[`${method} ${path}`];
      if (r === undefined) throw Object.assign(new Error('404'), { code: 'not_found' });
      return typeof r === 'function' ? r(body) : r;
    },
    async blob(path) {
      calls.push(`BLOB ${path}`);
      return { path };
    },
  };
}

const once = (p, what) => new Promise((resolve) => {
  p.addEventListener('change', function on(e) {
    if (e.detail.what === what) {
      p.removeEventListener('change', on);
      resolve();
    }
  });
});

test('a name is the id until the profile is known, then the display name', async () => {
  const api = fakeApi({ 'GET /users/bob': { id: 'bob', display_name: 'Bob Ø', avatar: '/api/v1/users/bob/avatar?v=1' } });
  const p = new People(api, 'alice', { objectURL: (b) => `blob:${b.path}` });
  const changed = once(p, 'profile');
  assert.equal(p.name('bob'), 'bob');
  await changed;
  assert.equal(p.name('bob'), 'Bob Ø');
  assert.equal(p.name('nobody'), 'nobody');
  await Promise.all(p.fetching.values());
  assert.equal(p.name('nobody'), 'nobody', 'an unknown user keeps its id');
  const av = once(p, 'avatar');
  assert.equal(p.avatarURL('bob'), '');
  await av;
  assert.equal(p.avatarURL('bob'), 'blob:/users/bob/avatar?v=1');
  assert.equal(api.calls.filter((c) => c.startsWith('GET /users/bob')).length, 1, 'fetched once');
  // A profile event replaces it.
  p.setProfile({ id: 'bob', display_name: 'Robert' });
  assert.equal(p.name('bob'), 'Robert');
  assert.equal(p.avatarURL('bob'), '');
});

test('request events, accept and refuse', async () => {
  const q = { id: 'dm:eve', to: 'alice', from: 'eve', kind: 'dm', held: true, count: 1, first: 1, last: 1 };
  const api = fakeApi({
    'POST /requests/dm%3Aeve/accept': { request: q, contact: true },
    'POST /requests/g%3Ag1/refuse': { refused: true },
  });
  const p = new People(api, 'alice');
  p.handleRequestEvent({ event: 'new', request: q });
  p.handleRequestEvent({ event: 'new', request: { ...q, id: 'g:g1', kind: 'group', group: 'g1', last: 5 } });
  p.handleRequestEvent({ event: 'bogus', request: { ...q, id: 'dm:x' } });
  p.handleRequestEvent({ event: 'new' });
  assert.deepEqual(p.pending().map((r) => r.id), ['g:g1', 'dm:eve']);
  assert.equal(p.requestOf('dm:eve').from, 'eve');
  await p.accept('dm:eve');
  assert.ok(p.isContact('eve'));
  await p.refuse('g:g1');
  assert.equal(p.pending().length, 0);
  p.handleRequestEvent({ event: 'new', request: q });
  p.handleRequestEvent({ event: 'accepted', request: q });
  assert.equal(p.pending().length, 0, 'answered on another device');
});

test('blocking hides the sender in groups only, and drops its requests', async () => {
  const api = fakeApi({ 'POST /blocks': {}, 'DELETE /blocks/mallory': {} });
  const p = new People(api, 'alice');
  p.handleRequestEvent({ event: 'new', request: { id: 'dm:mallory', from: 'mallory', kind: 'dm', last: 1 } });
  await p.block('mallory');
  assert.equal(p.pending().length, 0);
  assert.equal(p.visible({ group: 'g1', from: 'mallory' }), false);
  assert.equal(p.visible({ group: 'g1', from: 'bob' }), true);
  assert.equal(p.visible({ from: 'mallory', to: 'alice' }), true, 'a DM already received stays');
  await p.unblock('mallory');
  assert.equal(p.visible({ group: 'g1', from: 'mallory' }), true);
});

test('refresh loads the lists and settings', async () => {
  const api = fakeApi({
    'GET /contacts': { contacts: [{ user: 'bob' }] },
    'GET /blocks': { blocks: [{ user: 'mallory' }] },
    'GET /requests': { requests: [{ id: 'dm:eve', from: 'eve', kind: 'dm', last: 2 }] },
    'GET /me/settings': { dm_policy: 'contacts' },
  });
  const p = new People(api, 'alice');
  await p.refresh();
  assert.ok(p.isContact('bob') && p.isBlocked('mallory') && !p.isContact('eve'));
  assert.equal(p.dmPolicy, 'contacts');
  assert.deepEqual(p.pending().map((r) => r.from), ['eve']);
});

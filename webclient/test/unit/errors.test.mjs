// Refusals as sentences (src/errors.js).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { humanError } from '../../src/errors.js';

test('each refusal becomes one human sentence', () => {
  const cases = [
    [{ status: 404, code: 'not_found', message: 'no such user "ghost"' }, { user: 'ghost' }, 'There is no user called “ghost”.'],
    [{ status: 404, code: 'not_found', message: 'no such user "zed"' }, {}, 'There is no user called “zed”.'],
    [{ status: 404, code: 'not_found', message: 'no such group' }, { group: true }, 'This group no longer exists.'],
    [{ code: 'forbidden', topic: 'im/g/g1', detail: 'not a member of g1' }, { action: 'send' }, 'You are no longer a member of this group.'],
    [{ status: 403, code: 'forbidden', message: 'that user left this group: only they can rejoin it' }, { user: 'bob' }, 'bob left this group; only they can rejoin it.'],
    [{ status: 403, code: 'forbidden', message: 'only the owner may remove others; the owner cannot leave' }, {}, 'Only the group owner can do that, and the owner cannot leave the group.'],
    [{ code: 'too_large', detail: 'body is 18000 bytes, limit 16384' }, { action: 'send' }, 'The message was not sent: it is too long for the server.'],
    [{ code: 'rate_limited' }, { action: 'send' }, 'The message was not sent: you are going too fast. Wait a moment and try again.'],
    [{ status: 429, code: 'quota_exceeded', message: 'groups: quota exceeded: bob is already a member of 500 groups' }, {}, 'That did not work: you have reached a limit of this server. Quota exceeded: bob is already a member of 500 groups.'],
    [{ status: 0, code: 'network', message: 'network error: Failed to fetch' }, {}, 'You are offline. Try again when the connection is back.'],
    [{ status: 409, code: 'conflict' }, {}, 'That name is already taken. Try another.'],
    [{ status: 503, code: 'busy' }, {}, 'The server is busy. Try again in a moment.'],
    [{ status: 400, code: 'invalid', message: 'name is at most 100 bytes' }, {}, 'That did not work: the server did not accept it. Name is at most 100 bytes.'],
    [{ code: 'storage_full' }, { action: 'send' }, 'The message was not sent: the server is out of storage. Try again later.'],
    [0x97, { action: 'send' }, 'The message was not sent: you are going too fast. Wait a moment and try again.'],
    [0x90, { action: 'send' }, 'The message was not sent: nobody by that name exists here.'],
    [{ code: 'internal' }, {}, 'That did not work: something went wrong on the server. Try again.'],
    [{ code: 'forbidden', topic: 'im/g/g1', detail: 'only the sender or the group owner may retract' }, { action: 'retract' }, 'The message was not deleted: only its sender (or the group owner) can delete it.'],
    [{ code: 'forbidden', topic: 'im/u/bob/dm/alice', detail: 'not the sender' }, { action: 'edit' }, 'The message was not edited: only its sender can edit a text message.'],
    [{ code: 'forbidden', topic: 'im/g/g1', detail: 'not a member of g1' }, { action: 'reaction' }, 'You are no longer a member of this group.'],
    [{ code: 'not_found', topic: 'im/g/g1', detail: 'no message m9 here' }, { action: 'edit' }, 'The message was not edited: it is not in this conversation (any more).'],
    [{ code: 'conflict', detail: 'message was retracted' }, { action: 'reaction' }, 'The reaction was not saved: it has been deleted.'],
    [0x83, { action: 'edit' }, 'The message was not edited: it has been deleted.'],
    [0x87, { action: 'reaction' }, 'The reaction was not saved: you cannot react in this conversation.'],
    [{ code: 'http' }, {}, 'That did not work: something went wrong on the server. Try again.'],
  ];
  for (const [err, ctx, want] of cases) assert.equal(humanError(err, ctx), want, JSON.stringify(err));
});

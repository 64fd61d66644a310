// MQTT.js, as an app would use it, against a real server: no browser.
// - its default client id (mqttjs_...) connects, MQTT 3.1.1 and 5, and so
//   does an empty one (MQTT 5: the server assigns one and says which); an
//   MQTT 5 CONNACK says the maximum packet size;
// - an MQTT 5 publish the server refuses (a body over body_limit) resolves
//   with an error carrying PUBACK 0x97, and the next publish on the same
//   connection is acknowledged (a PUBACK code MQTT 5 does not allow, such
//   as the 0x95 the server once sent, made MQTT.js drop the packet: the
//   publish never resolved, nor did any after it).

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import mqtt from 'mqtt';
import { password, register, startServer } from './harness.js';

let srv;

before(async () => {
  srv = await startServer();
  await register(srv.base, 'alice');
  await register(srv.base, 'bob');
});

after(async () => {
  await srv?.stop();
});

/** Connects; resolves with the client once its CONNACK arrived (kept as client.connack). */
function connect(user, opts) {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect(`mqtt://127.0.0.1:${srv.mqttPort}`, {
      username: user, password, reconnectPeriod: 0, connectTimeout: 10_000, ...opts,
    });
    client.once('connect', (connack) => {
      client.connack = connack;
      resolve(client);
    });
    client.once('error', reject);
  });
}

for (const [name, opts] of [
  ['MQTT 3.1.1, default client id', { protocolVersion: 4 }],
  ['MQTT 5, default client id', { protocolVersion: 5 }],
  ['MQTT 5, empty client id', { protocolVersion: 5, clientId: '' }],
]) {
  test(`${name}: connects, subscribes and receives`, { timeout: 30_000 }, async () => {
    const bob = await connect('bob', opts);
    const alice = await connect('alice', { protocolVersion: 5 });
    try {
      if (opts.clientId === '') {
        assert.ok(bob.connack.properties?.assignedClientIdentifier, 'CONNACK has an Assigned Client Identifier');
      } else {
        assert.match(bob.options.clientId, /^mqttjs_/);
      }
      if (opts.protocolVersion === 5) {
        assert.equal(bob.connack.properties?.maximumPacketSize, 256 * 1024, 'CONNACK Maximum Packet Size');
      }
      await bob.subscribeAsync('im/u/bob/#', { qos: 1 });
      const got = new Promise((resolve) => {
        bob.on('message', (topic, payload) => {
          if (topic === 'im/u/bob/dm/alice' && payload.toString().includes(name)) resolve();
        });
      });
      await alice.publishAsync('im/u/bob/dm/alice', JSON.stringify({ body: name }), { qos: 1 });
      await got;
    } finally {
      await Promise.all([bob.endAsync(), alice.endAsync()]);
    }
  });
}

test('MQTT 5: a refused oversize publish rejects with 0x97, the next one is acknowledged', { timeout: 30_000 }, async () => {
  const alice = await connect('alice', { protocolVersion: 5 });
  const errors = [];
  alice.on('error', (e) => errors.push(e));
  try {
    const big = JSON.stringify({ body: 'x'.repeat(20_000) }); // over the default body_limit (16384)
    await assert.rejects(alice.publishAsync('im/u/bob/dm/alice', big, { qos: 1 }), (err) => {
      assert.equal(err.code, 0x97, `reason code of ${err.message}`);
      return true;
    });
    const ack = await alice.publishAsync('im/u/bob/dm/alice', JSON.stringify({ body: 'after the refusal' }), { qos: 1 });
    assert.equal(ack?.reasonCode ?? 0, 0);
    assert.ok(alice.connected, 'still connected');
    assert.deepEqual(errors.map(String), []);
  } finally {
    await alice.endAsync();
  }
});

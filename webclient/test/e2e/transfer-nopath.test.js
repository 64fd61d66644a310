// A file transfer that cannot connect (issue 19, point 5) ends with a reason
// a person can act on, on both sides, instead of "connecting…" forever.
// "No path" is made certain with ICE policy "relay" and no TURN server: no
// candidate at all, as with loopback only. (Transfers that work: p2p/.)

import assert from 'node:assert/strict';
import { writeFile, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import {
  openDM, screenshot, twoPeople,
  serverAndBrowser,
} from './harness.js';

let srv;
let browser;

serverAndBrowser(['sam', 'tia'], (s, b) => {
  srv = s;
  browser = b;
});

test('a transfer with no network path times out with the reason on both sides', { timeout: 60_000 }, async () => {
  const { pages: [sam, tia], close } = await twoPeople(browser, srv, 'sam', 'tia', { dm: false });
  for (const p of [sam, tia]) {
    await p.evaluate(() => Object.assign(window.mqimDebug.transfers.settings, { connectTimeout: 3000, iceTransportPolicy: 'relay' }));
  }
  await openDM(sam, 'tia');
  const dir = await mkdtemp(path.join(tmpdir(), 'mqim-nopath-'));
  const file = path.join(dir, 'plan.txt');
  await writeFile(file, 'the plan');
  await sam.setInputFiles('#file-picker', file);
  const row = '#transfers .xfer[data-state="failed"] .xfer-sub';
  await sam.waitForSelector(`#transfers .xfer[data-name="plan.txt"][data-state="failed"]`, { timeout: 15_000 });
  assert.equal(await sam.textContent(row), 'to tia · failed: tia could not be connected: no direct network path; the operator can configure a TURN server');
  await tia.waitForSelector(row, { timeout: 15_000 });
  assert.equal(await tia.textContent(row), 'from sam · failed: could not connect to sam: no direct network path; the operator can configure a TURN server');
  await screenshot(sam, 'transfer-no-path-sender');
  await screenshot(tia, 'transfer-no-path-receiver');
  assert.deepEqual(sam.errors, []);
  assert.deepEqual(tia.errors, []);
  await close();
});

// Peer-to-peer file transfer over WebRTC: browser to browser (two contexts),
// Go CLI to browser and browser to Go CLI, 5 MiB each with the SHA-256 of
// what arrived checked here and progress reaching 100% on both sides.
// Run by ../p2p-run.sh inside a network namespace with a veth pair
// (Chromium gathers no ICE candidates on loopback alone).

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { newPage, openDM, password, register, screenshot, signIn, startServer, until } from '../harness.js';
import { launchForWebRTC } from './webrtc.js';

const size = 5 << 20;

let srv;
let browser;
let dir;
let bigPath;
let bigSum;

const sha256 = (b) => createHash('sha256').update(b).digest('hex');

before(async () => {
  srv = await startServer();
  browser = await launchForWebRTC();
  for (const u of ['alice', 'bob', 'carol']) await register(srv.base, u);
  dir = await mkdtemp(path.join(tmpdir(), 'mqim-p2p-'));
  const data = randomBytes(size);
  bigPath = path.join(dir, 'report.bin');
  bigSum = sha256(data);
  await writeFile(bigPath, data);
});

after(async () => {
  if (browser) await browser.close();
  if (srv) await srv.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function user(name) {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 }, acceptDownloads: true });
  // Every status line a transfer row shows, to check speed and time left
  // appeared (a 5 MiB transfer is over too fast to catch by polling).
  await ctx.addInitScript(() => {
    window.xferLines = new Set();
    setInterval(() => {
      for (const el of document.querySelectorAll('#transfers .xfer-sub')) window.xferLines.add(el.textContent);
    }, 5);
  });
  const page = await newPage(ctx);
  page.setDefaultTimeout(30_000);
  await signIn(page, srv.base, name);
  return page;
}

/** The transfer row of `name` in the page's transfers panel. */
const row = (name, state = '') => `#transfers .xfer[data-name="${name}"]${state ? `[data-state="${state}"]` : ''}`;

/** Saves a received file through the Save button and returns the SHA-256 of the download. */
async function saveAndHash(page, name) {
  const [download] = await Promise.all([page.waitForEvent('download'), page.click(`${row(name, 'done')} .xfer-save`)]);
  assert.equal(download.suggestedFilename(), name);
  return sha256(await readFile(await download.path()));
}

/** Runs the mqim binary; resolves with {code, stdout, stderr} when it exits. */
function mqim(args, { onStderr } = {}) {
  const proc = spawn(process.env.MQIM_BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  proc.stdout.on('data', (d) => { stdout += d; });
  proc.stderr.on('data', (d) => {
    stderr += d;
    if (onStderr) onStderr(stderr);
  });
  const done = new Promise((resolve) => proc.on('exit', (code) => resolve({ code, stdout, stderr })));
  return { proc, done, stderr: () => stderr };
}

test('browser to browser: 5 MiB with accept, progress, save and a file message; decline', { timeout: 90_000 }, async () => {
  const alice = await user('alice');
  const bob = await user('bob');
  await openDM(alice, 'bob');
  await openDM(bob, 'alice');

  await alice.setInputFiles('#file-picker', bigPath);
  await alice.waitForSelector(row('report.bin', 'waiting'));
  await bob.waitForSelector(row('report.bin', 'offered'));
  await screenshot(bob, 'transfer-offered');
  await bob.click(`${row('report.bin', 'offered')} .xfer-accept`);
  await bob.waitForSelector(row('report.bin', 'done'), { timeout: 60_000 });
  await alice.waitForSelector(row('report.bin', 'done'), { timeout: 30_000 });
  for (const p of [alice, bob]) {
    assert.equal(await p.getAttribute(row('report.bin'), 'data-pct'), '100');
    assert.match(await p.textContent(`${row('report.bin')} .xfer-sub`), /SHA-256 verified/);
  }
  assert.equal(await saveAndHash(bob, 'report.bin'), bigSum);
  // Both sides showed speed and time left while it ran.
  for (const p of [alice, bob]) {
    const lines = await p.evaluate(() => [...window.xferLines]);
    assert.ok(lines.some((l) => /\d+% · [\d.]+ [KM]B\/s · \d+s left$/.test(l)), `no speed and time left in ${JSON.stringify(lines)}`);
  }

  // The sender recorded the transfer in the chat; both sides show it.
  for (const p of [alice, bob]) {
    await p.waitForSelector('#msg-list .msg .file-card .file-name:text-is("report.bin")');
  }
  // The SHA-256 is the file's (the sender learns it while the file moves).
  assert.match(await bob.textContent('#msg-list .file-card .file-meta'), new RegExp(`5\\.2 MB · sent peer to peer · SHA-256 ${bigSum.slice(0, 12)}…`));
  await screenshot(alice, 'transfer-done-sender');
  await screenshot(bob, 'transfer-done-receiver');

  // Declined files end on both sides without moving data.
  const small = path.join(dir, 'notes.txt');
  await writeFile(small, 'not wanted\n');
  await alice.setInputFiles('#file-picker', small);
  await bob.click(`${row('notes.txt', 'offered')} .xfer-decline`);
  await alice.waitForSelector(row('notes.txt', 'declined'));
  assert.match(await alice.textContent(`${row('notes.txt')} .xfer-sub`), /bob declined/);

  // Drag and drop offers a file too; the sender cancels before bob accepts.
  const dt = await alice.evaluateHandle(() => {
    const d = new DataTransfer();
    d.items.add(new File(['dropped bytes'], 'dropped.txt', { type: 'text/plain' }));
    return d;
  });
  await alice.dispatchEvent('#chat', 'dragenter', { dataTransfer: dt });
  await alice.waitForSelector('#drop-zone:not([hidden])');
  await screenshot(alice, 'transfer-drop-zone');
  await alice.dispatchEvent('#chat', 'drop', { dataTransfer: dt });
  await alice.waitForSelector('#drop-zone', { state: 'hidden' });
  await bob.waitForSelector(row('dropped.txt', 'offered'));
  await alice.click(`${row('dropped.txt', 'waiting')} .xfer-cancel`);
  await alice.waitForSelector(row('dropped.txt', 'cancelled'));
  await bob.waitForSelector(row('dropped.txt', 'cancelled'));
  assert.match(await bob.textContent(`${row('dropped.txt')} .xfer-sub`), /alice cancelled/);
  assert.deepEqual([...alice.errors, ...bob.errors], []);
  await alice.context().close();
  await bob.context().close();
});

test('browser to browser: a connection dropped mid-transfer resumes and fetches only the missing chunks', { timeout: 120_000 }, async (t) => {
  const alice = await user('alice');
  const bob = await user('bob');
  await openDM(alice, 'bob');
  await openDM(bob, 'alice');
  const data = randomBytes(32 << 20);
  const file = path.join(dir, 'resume.bin');
  await writeFile(file, data);

  await alice.setInputFiles('#file-picker', file);
  await bob.click(`${row('resume.bin', 'offered')} .xfer-accept`);
  // Once a fifth has arrived, bob's connection breaks as if the network
  // went away: alice sees the channel close and offers again.
  await until(async () => Number(await bob.getAttribute(row('resume.bin'), 'data-pct')) >= 20, { timeout: 60_000, interval: 20, message: 'a fifth of resume.bin at bob' });
  const pctAtDrop = Number(await bob.getAttribute(row('resume.bin'), 'data-pct'));
  await bob.evaluate(() => window.mqimDebug.transfers.dropConnections());
  await bob.waitForSelector(row('resume.bin', 'done'), { timeout: 90_000 });
  await alice.waitForSelector(row('resume.bin', 'done'), { timeout: 30_000 });
  assert.ok(pctAtDrop < 100, `dropped at ${pctAtDrop}%, too late to test resume`);
  assert.equal(await saveAndHash(bob, 'resume.bin'), sha256(data));

  // Resumed, not restarted: every chunk arrived, few twice (at most the
  // window in flight when the connection broke), and some were asked for
  // again on the new connection.
  const st = await bob.evaluate(() => {
    const t = window.mqimDebug.transfers;
    return t.stats([...t.items.values()].find((it) => it.name === 'resume.bin'));
  });
  const chunks = (32 << 20) / (16 << 10);
  t.diagnostic(`dropped at ${pctAtDrop}%; receiver chunk stats ${JSON.stringify(st)}`);
  assert.equal(st.received, chunks, JSON.stringify(st));
  assert.equal(st.missing, 0, JSON.stringify(st));
  assert.ok(st.reRequests > 0, `no chunk was asked for again: ${JSON.stringify(st)}`);
  assert.ok(st.duplicates <= 128, `too many chunks twice, a restart? ${JSON.stringify(st)}`);
  assert.ok(st.requested < chunks * 1.2, `requested ${st.requested} of ${chunks} chunks: ${JSON.stringify(st)}`);
  await screenshot(bob, 'transfer-resumed');
  assert.deepEqual([...alice.errors, ...bob.errors], []);
  await alice.context().close();
  await bob.context().close();
});

test('Go CLI to browser: send-file, accepted and saved in the browser', { timeout: 90_000 }, async () => {
  const bob = await user('bob');
  await openDM(bob, 'carol');
  const cli = mqim(['send-file', '--http', srv.base, '--user', 'carol', '--password', password, '--to', 'bob', '--timeout', '60s', bigPath]);
  await bob.waitForSelector(row('report.bin', 'offered'));
  await bob.click(`${row('report.bin', 'offered')} .xfer-accept`);
  await bob.waitForSelector(row('report.bin', 'done'), { timeout: 60_000 });
  assert.equal(await bob.getAttribute(row('report.bin'), 'data-pct'), '100');
  const res = await cli.done;
  assert.equal(res.code, 0, res.stderr);
  assert.match(res.stderr, /report\.bin: sending 100%/);
  assert.match(res.stdout, new RegExp(`^sent report\\.bin ${size} ${bigSum}$`, 'm'));
  assert.equal(await saveAndHash(bob, 'report.bin'), bigSum);
  await bob.waitForSelector('#msg-list .msg.theirs .file-card .file-name:text-is("report.bin")');
  assert.deepEqual(bob.errors, []);
  await bob.context().close();
});

test('browser to Go CLI: recv-files writes the file with the right SHA-256', { timeout: 90_000 }, async () => {
  const out = await mkdtemp(path.join(dir, 'recv-'));
  const cli = mqim(['recv-files', '--http', srv.base, '--user', 'carol', '--password', password, '--from', 'alice', '--dir', out, '--count', '1', '--timeout', '60s']);
  await until(() => cli.stderr().includes('waiting for files'), { timeout: 20_000, message: () => `recv-files to start: ${cli.stderr()}` });
  const alice = await user('alice');
  await openDM(alice, 'carol');
  await alice.setInputFiles('#file-picker', bigPath);
  try {
    await alice.waitForSelector(row('report.bin', 'done'), { timeout: 60_000 });
  } catch (err) {
    const sub = await alice.textContent(`${row('report.bin')} .xfer-sub`).catch(() => '?');
    throw new Error(`${err.message}\nsender row: ${sub}\nrecv-files stderr:\n${cli.stderr()}`);
  }
  assert.equal(await alice.getAttribute(row('report.bin'), 'data-pct'), '100');
  const res = await cli.done;
  assert.equal(res.code, 0, res.stderr);
  assert.match(res.stderr, /report\.bin: receiving 100%/);
  assert.equal(sha256(await readFile(path.join(out, 'report.bin'))), bigSum);
  await alice.waitForSelector('#msg-list .msg.mine .file-card .file-name:text-is("report.bin")');
  assert.deepEqual(alice.errors, []);
  await alice.context().close();
});

test('from a group: the sender picks the member, the record goes to their DM', { timeout: 60_000 }, async () => {
  const alice = await user('alice');
  const bob = await user('bob');
  await alice.click('#new-group');
  await alice.fill('#new-group-name', 'Files');
  await alice.fill('#new-group-members', 'bob, carol');
  await alice.click('#new-group-submit');
  await alice.waitForSelector('#chat-title:text-is("Files")');
  await alice.waitForSelector('#chat-sub:has-text("3 members")');
  const small = path.join(dir, 'agenda.txt');
  await writeFile(small, 'agenda\n');
  await alice.setInputFiles('#file-picker', small);
  await alice.waitForSelector('#pick-member[open]');
  await screenshot(alice, 'transfer-pick-member');
  assert.deepEqual(await alice.$$eval('#pick-member [data-user]', (els) => els.map((e) => e.dataset.user)), ['bob', 'carol']);
  await alice.click('#pick-member [data-user="bob"]');
  await bob.click(`${row('agenda.txt', 'offered')} .xfer-accept`);
  await bob.waitForSelector(row('agenda.txt', 'done'));
  await alice.waitForSelector(row('agenda.txt', 'done'));
  await openDM(bob, 'alice');
  await bob.waitForSelector('#msg-list .msg.theirs .file-card .file-name:text-is("agenda.txt")');
  assert.deepEqual([...alice.errors, ...bob.errors], []);
  await alice.context().close();
  await bob.context().close();
});

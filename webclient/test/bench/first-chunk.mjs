// Time from sendFile() to the Describe and to the first chunk on the
// channel, for a large file the receiver asks for as soon as it is
// described (the JavaScript twin of filexfer's BenchmarkTimeToFirstChunk),
// and to the digest frame (the whole file hashed, while chunks may move).
// The source is zeros made on demand, so reads cost next to nothing.
//
//   node webclient/test/bench/first-chunk.mjs [MiB, default 256] [runs, default 3]
import { TransferEngine } from '../../src/transfer/engine.js';
import { decodeFrame, encodeFrame, FrameType } from '../../src/transfer/frames.js';

const size = Number(process.argv[2] ?? 256) * (1 << 20);
const runs = Number(process.argv[3] ?? 3);
const zeros = { size, slice: (start, end) => new Uint8Array(end - start) };

for (let i = 0; i < runs; i++) {
  const e = new TransferEngine({});
  let start = 0;
  let describedAt = 0;
  let digested;
  const digest = new Promise((resolve) => { digested = resolve; });
  const chunked = new Promise((resolve) => {
    e.attach({
      async send(bytes) {
        const f = decodeFrame(bytes);
        if (f.type === FrameType.DESCRIBE && !describedAt) {
          describedAt = performance.now() - start;
          queueMicrotask(() => e.handleFrame(this, encodeFrame({ type: FrameType.REQUEST, fileID: f.fileID, ranges: [[0, 1]] })));
        }
        if (f.type === FrameType.CHUNK) resolve(performance.now() - start);
        if (f.type === FrameType.DIGEST) digested(performance.now() - start);
      },
    });
  });
  start = performance.now();
  const info = await e.sendFile(zeros, { name: 'big.bin' });
  const first = await chunked;
  // Before digest frames (describe after hashing) the describe carried the hash: no digest comes.
  const hashed = FrameType.DIGEST === undefined ? describedAt : await digest;
  e.cancel(info.fileID);
  e.close();
  console.log(`${size >> 20} MiB: describe after ${describedAt.toFixed(1)} ms, first chunk after ${first.toFixed(1)} ms, hashed after ${hashed.toFixed(0)} ms`);
}

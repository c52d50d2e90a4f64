import { PassThrough, Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { CONTROL_FRAME, demux, frame } from '../../src/host/docker.js';

/** A writable that takes one chunk at a time, slowly: every write past the first reports backpressure. */
function slowSink(): { sink: Writable; bytes: () => Buffer; maxDrainListeners: () => number } {
  const got: Buffer[] = [];
  let max = 0;
  const sink = new Writable({
    highWaterMark: 1,
    write(chunk: Buffer, _enc, done) {
      got.push(chunk);
      max = Math.max(max, sink.listenerCount('drain'));
      setTimeout(done, 1);
    },
  });
  return { sink, bytes: () => Buffer.concat(got), maxDrainListeners: () => max };
}

describe('demux', () => {
  it('splits stdout and stderr frames, split anywhere across chunks, in order', async () => {
    const source = new PassThrough();
    const out = new PassThrough();
    const err = new PassThrough();
    const outBytes: Buffer[] = [];
    const errBytes: Buffer[] = [];
    out.on('data', (c: Buffer) => outBytes.push(c));
    err.on('data', (c: Buffer) => errBytes.push(c));
    const done = demux(source, out, err);
    const stream = Buffer.concat([frame(1, Buffer.from('hello ')), frame(2, Buffer.from('oops')), frame(1, Buffer.from('world'))]);
    for (let i = 0; i < stream.length; i += 3) source.write(stream.subarray(i, i + 3));
    source.end();
    await done;
    expect(Buffer.concat(outBytes).toString()).toBe('hello world');
    expect(Buffer.concat(errBytes).toString()).toBe('oops');
  });

  it('a slow reader: one drain listener at a time, the source paused, every byte delivered before it resolves', async () => {
    const source = new PassThrough();
    const { sink, bytes, maxDrainListeners } = slowSink();
    const payloads = Array.from({ length: 200 }, (_, i) => Buffer.alloc(100, i % 256));
    const done = demux(source, sink, new PassThrough());
    // All frames in one chunk: the loop must stop at the first full write, not queue 200 listeners.
    source.end(Buffer.concat(payloads.map((p) => frame(1, p))));
    await done;
    expect(maxDrainListeners()).toBeLessThanOrEqual(1);
    expect(bytes().equals(Buffer.concat(payloads))).toBe(true);
  });

  it('hands control frames to their callback, not to stdout', async () => {
    const source = new PassThrough();
    const out = new PassThrough();
    const seen: string[] = [];
    const done = demux(source, out, new PassThrough(), (_k, p) => seen.push(p.toString()));
    source.end(Buffer.concat([frame(1, Buffer.from('x')), frame(CONTROL_FRAME, Buffer.from('{"exitCode":3}'))]));
    await done;
    expect(seen).toEqual(['{"exitCode":3}']);
    expect(out.read()?.toString()).toBe('x');
  });

  it('a reader that is gone: its output is dropped and demux still ends', async () => {
    const source = new PassThrough();
    const { sink } = slowSink();
    const done = demux(source, sink, new PassThrough());
    source.write(Buffer.concat([frame(1, Buffer.alloc(10)), frame(1, Buffer.alloc(10))]));
    sink.destroy();
    source.end(frame(1, Buffer.alloc(10)));
    await expect(done).resolves.toBeUndefined();
  }, 5_000);
});

import { createHash, randomBytes } from 'node:crypto';
import { PassThrough, Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { nodeMac } from '../../src/core/cluster.js';
import { lxcConfig } from '../../src/host/lxc.js';
import { TRAILER_LENGTH, withoutTrailer, withTrailer } from '../../src/host/volume-stream.js';

/** The bytes of a readable, to the end. */
async function drain(r: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of r) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** data through the sender's side, the wire cut into pieces of the given sizes (cycled), then the receiver's side. */
async function roundTrip(data: Buffer, pieces: number[], tamper?: (wire: Buffer) => Buffer) {
  const sender = withTrailer();
  Readable.from([data]).pipe(sender);
  let wire = await drain(sender);
  if (tamper) wire = tamper(wire);
  const receiver = withoutTrailer();
  const feed = new PassThrough();
  feed.pipe(receiver);
  const out = drain(receiver);
  for (let at = 0, k = 0; at < wire.length; k++) {
    const n = pieces[k % pieces.length]!;
    feed.write(wire.subarray(at, at + n));
    at += n;
  }
  feed.end();
  return { out: await out, sent: sender.tally, got: receiver.tally };
}

describe('a node volume stream: its length and sha256 checked end to end', () => {
  const data = randomBytes(300_000);
  const sha = createHash('sha256').update(data).digest('hex');

  it('arrives whole, without its trailer, whatever pieces the connection cuts it into', async () => {
    for (const pieces of [[65_536], [1], [7, TRAILER_LENGTH - 1, 1000], [TRAILER_LENGTH], [300_000 + TRAILER_LENGTH]]) {
      const { out, sent, got } = await roundTrip(data, pieces);
      expect(out.equals(data), `pieces ${pieces.join(',')}`).toBe(true);
      expect(sent).toMatchObject({ bytes: data.length, sha256: sha });
      expect(got).toEqual({ bytes: data.length, sha256: sha, sent: { bytes: data.length, sha256: sha } });
    }
  });

  it('an empty stream is a stream too', async () => {
    const { out, got } = await roundTrip(Buffer.alloc(0), [3]);
    expect(out.length).toBe(0);
    expect(got.sent).toEqual({ bytes: 0, sha256: got.sha256 });
  });

  it('a changed byte shows as a sha256 other than the one sent', async () => {
    const { got } = await roundTrip(data, [4096], (w) => {
      const c = Buffer.from(w);
      c[1234] ^= 0xff;
      return c;
    });
    expect(got.sent?.sha256).toBe(sha);
    expect(got.sha256).not.toBe(sha);
  });

  it('a stream that broke off has no trailer: nothing was said to be sent', async () => {
    const { got } = await roundTrip(data, [4096], (w) => w.subarray(0, 200_000));
    expect(got.sent).toBeNull();
    expect(got.bytes).toBe(200_000);
  });
});

describe("a node's MAC", () => {
  it('is derived from its address: locally administered, unicast, the same wherever it runs', () => {
    expect(nodeMac('10.37.4.2')).toBe('02:6b:0a:25:04:02');
    expect(nodeMac('192.168.255.254')).toBe('02:6b:c0:a8:ff:fe');
    expect(nodeMac('10.37.4.3')).not.toBe(nodeMac('10.37.4.2'));
    expect(() => nodeMac('10.37.4')).toThrow(/not an IPv4 address/);
  });

  it('goes into the node config', () => {
    const config = lxcConfig({
      name: 'a-1-0',
      hostname: 'host-0',
      image: '/p/img',
      upper: '/p/v/delta',
      bridge: 'br0',
      address: '10.37.4.2/24',
      hwaddr: nodeMac('10.37.4.2'),
      broadcast: '10.37.4.255',
      gateway: '10.37.4.1',
      mounts: [],
      memoryBytes: 0,
      cpuMillis: 0,
      cgroup2: true,
    });
    expect(config).toContain('lxc.net.0.hwaddr = 02:6b:0a:25:04:02\n');
  });
});

import { createSocket, type Socket } from 'node:dgram';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Ambassador } from '../../src/daemon/ambassador.js';
import { JobRepo } from '../../src/state/jobs.js';
import { connectEtcd, type Store } from '../../src/state/store.js';
import { startEtcd, type EtcdInstance } from '../harness/etcd.js';
import { uniqueName } from '../harness/tmp.js';
import { haveTools, integration } from '../harness/tools.js';

const run = integration('ambassador', haveTools('etcd'), 'etcd is not installed (Debian package etcd-server)');

/** A UDP server on loopback that answers each datagram with its tag and the datagram. */
async function udpEcho(tag: string): Promise<{ port: number; socket: Socket }> {
  const socket = createSocket('udp4');
  socket.on('message', (msg, from) => socket.send(Buffer.concat([Buffer.from(`${tag}:`), msg]), from.port, from.address));
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', () => r()));
  return { port: socket.address().port, socket };
}

/** A client with its own source port: sends each datagram and waits for one answer. */
async function udpClient() {
  const socket = createSocket('udp4');
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', () => r()));
  return {
    ask(port: number, text: string, timeoutMs = 2000): Promise<string | null> {
      return new Promise((resolve) => {
        const timer = setTimeout(() => (socket.off('message', on), resolve(null)), timeoutMs);
        const on = (msg: Buffer) => {
          clearTimeout(timer);
          socket.off('message', on);
          resolve(msg.toString());
        };
        socket.on('message', on);
        socket.send(text, port, '127.0.0.1');
      });
    },
    close: () => socket.close(),
  };
}

describe.skipIf(!run)('the ambassador forwards udp services', () => {
  let etcd: EtcdInstance;
  let store: Store;
  beforeAll(async () => {
    etcd = await startEtcd();
    store = await connectEtcd([etcd.url]);
  });
  afterAll(async () => {
    await store?.close();
    await etcd?.stop();
  });

  it('a -udp service gets a udp forwarder; a new flow follows the service when it moves; datagrams arrive intact', async () => {
    const fleet = uniqueName('f');
    const jobs = new JobRepo(store, fleet);
    const logs: string[] = [];
    const amb = new Ambassador('h1', fleet, store, jobs, (l) => logs.push(l), 500);
    const first = await udpEcho('one');
    const second = await udpEcho('two');
    const a = await udpClient();
    const b = await udpClient();
    try {
      const port = await amb.ensure('dns-53-udp');
      // Before the service exists nothing answers, and the next datagram tries again.
      expect(await a.ask(port, 'early', 500)).toBeNull();
      expect(logs.join('\n')).toMatch(/no service dns-53-udp/);

      await jobs.putService({ name: 'dns-53-udp', job: 'dns', host: 'h2', address: '127.0.0.1', port: first.port, protocol: 'udp' });
      expect(await a.ask(port, 'hello')).toBe('one:hello');
      const binary = Buffer.from(Array.from({ length: 1200 }, (_, i) => i & 0xff)).toString('latin1');
      expect(await a.ask(port, binary)).toBe(`one:${binary}`);

      // The service moves: a client that starts now reaches it where it runs.
      await jobs.putService({ name: 'dns-53-udp', job: 'dns', host: 'h3', address: '127.0.0.1', port: second.port, protocol: 'udp' });
      expect(await b.ask(port, 'hi')).toBe('two:hi');

      // The first client's flow still goes to the old place; once that stops answering, the flow is found anew.
      first.socket.close();
      expect(await a.ask(port, 'anyone?', 300)).toBeNull();
      await new Promise((r) => setTimeout(r, 700));
      expect(await a.ask(port, 'again')).toBe('two:again');

      // The same port is kept for the service, and the port was recorded for linked jobs.
      expect(await amb.ensure('dns-53-udp')).toBe(port);
      expect(await store.get(`/knarr/${fleet}/hostdata/h1/ambassadors/dns-53-udp`)).toBe(String(port));

      // Once no job links to it, the forwarder goes.
      await amb.retain(new Set());
      expect(await b.ask(port, 'gone', 500)).toBeNull();
      expect(await store.get(`/knarr/${fleet}/hostdata/h1/ambassadors/dns-53-udp`)).toBeNull();
    } finally {
      amb.close();
      a.close();
      b.close();
      for (const s of [first.socket, second.socket]) {
        try {
          s.close();
        } catch {
          // closed already (the first server is, once the test got that far)
        }
      }
    }
  });
});

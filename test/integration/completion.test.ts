import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostname } from 'node:os';
import { ClusterRepo } from '../../src/state/clusters.js';
import { fleetKeys } from '../../src/state/keys.js';
import { connectEtcd } from '../../src/state/store.js';
import { haveDockerd, startDockerd } from '../harness/dockerd.js';
import { startEtcd, type EtcdInstance } from '../harness/etcd.js';
import { tempDir, uniqueName, type TempDir } from '../harness/tmp.js';
import { haveTools, integration } from '../harness/tools.js';

const root = new URL('../../', import.meta.url).pathname;

/**
 * Types LINE ($1) and a TAB into an interactive zsh in a pty, then prints the edit buffer. The completion comes from
 * completions/ on $fpath, or with $2 = source from `source <(knarr completion zsh)`.
 */
const ZSH_DRIVER = `
zmodload zsh/zpty
zpty z zsh -f -i
[[ $2 == source ]] || zpty -w z "fpath=(${root}completions \\$fpath)"
zpty -w z "PS1='> '; autoload -U compinit; compinit -u -d \${TMPDIR:-/tmp}/knarr-zcompdump-$2-$$"
[[ $2 == source ]] && zpty -w z 'source <(knarr completion zsh)'
zpty -w z 'show-buffer() { print -r -- "\${(U):-buf}=[$BUFFER]"; }; zle -N show-buffer; bindkey "^Xb" show-buffer'
zpty -w -n z "$1"$'\\t'
zpty -w -n z $'\\x18b'
local out
zpty -r -m z out '*BUF=\\[*\\]*'
print -r -- "\${\${out##*BUF=\\[}%%\\]*}"
zpty -d z
`;

describe.skipIf(!integration('shell completion', haveTools('etcd', 'bash', 'zsh', 'fish'), 'needs etcd, bash, zsh and fish'))(
  'completion names your things in real bash, zsh and fish',
  () => {
    let etcd: EtcdInstance;
    let tmp: TempDir;
    let env: Record<string, string>;
    const pool = uniqueName('kc');

    beforeAll(async () => {
      etcd = await startEtcd();
      tmp = await tempDir('knarr-complete-');
      // knarr on PATH, as the scripts call it.
      mkdirSync(`${tmp.path}/bin`);
      symlinkSync(`${root}bin/knarr`, `${tmp.path}/bin/knarr`);
      writeFileSync(`${tmp.path}/drive.zsh`, ZSH_DRIVER);
      env = { PATH: `${tmp.path}/bin:${process.env.PATH}`, KNARR_ETCD: etcd.url, KNARR_STATE_DIR: `${tmp.path}/state`, CI: 'true' };
      const k = (...args: string[]) => execa('knarr', args, { env });
      await k('pool', 'init', '--name', pool, '--driver', 'dir', '--path', `${tmp.path}/pool`);
      await k('dot', 'init', 'pgdata');
      await k('dot', 'commit', 'pgdata', '-m', 'first');
      await k('dot', 'branch', 'pgdata', 'experiment');
    }, 120_000);
    afterAll(async () => {
      await etcd?.stop();
      await tmp?.cleanup();
    });

    const bash = async (line: string, extra: Record<string, string> = {}) => {
      const words = line.split(' ');
      const script =
        `source ${root}completions/knarr.bash; COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _knarr; ` +
        `printf '%s\\n' "\${COMPREPLY[@]}"`;
      return (await execa('bash', ['-c', script], { env: { ...env, ...extra } })).stdout.split('\n').filter(Boolean);
    };
    /** As bash calls it at a prompt: the line and the cursor, with COMP_WORDS split at colons too. */
    const bashLine = async (line: string, extra: Record<string, string> = {}) => {
      const words = line.split(/(:| +)/).filter((w) => w.trim() !== '');
      if (line.endsWith(' ')) words.push('');
      const script =
        `source ${root}completions/knarr.bash; COMP_LINE='${line}'; COMP_POINT=${line.length}; ` +
        `COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _knarr; printf '%s\\n' "\${COMPREPLY[@]}"`;
      return (await execa('bash', ['-c', script], { env: { ...env, ...extra } })).stdout.split('\n').filter(Boolean);
    };
    const zsh = async (line: string, extra: Record<string, string> = {}, how = 'fpath') =>
      (await execa('zsh', [`${tmp.path}/drive.zsh`, line, how], { env: { ...env, TMPDIR: tmp.path, ...extra }, timeout: 30_000 })).stdout.replace(/\r/g, '');
    const fish = async (line: string, extra: Record<string, string> = {}) =>
      // No completion file installed on this machine is loaded beside the one tested.
      (
        await execa('fish', ['-c', `set -g fish_complete_path ${tmp.path}; source ${root}completions/knarr.fish; complete -C '${line}'`], {
          env: { ...env, ...extra },
        })
      ).stdout
        .split('\n')
        .filter(Boolean)
        .map((l) => l.split('\t')[0]);

    it('knarr __complete prints one name a line, and nothing at all for an unknown kind or dot', async () => {
      const k = (...args: string[]) => execa('knarr', ['__complete', ...args], { env, reject: false });
      expect((await k('dot')).stdout).toBe('pgdata');
      expect((await k('branch', 'pgdata')).stdout).toBe('experiment\nmaster');
      expect((await k('pool')).stdout).toBe(pool);
      for (const r of [await k('branch', 'nosuch'), await k('gizmo'), await k('job')]) {
        expect(r).toMatchObject({ exitCode: 0, stdout: '', stderr: '' });
      }
    });

    it('names jobs, clusters and their nodes, images, operations, hosts and remotes from the records the list commands read', async () => {
      const store = await connectEtcd([etcd.url]);
      const keys = fleetKeys('default');
      try {
        await store.put(keys.job('web'), JSON.stringify({ spec: { name: 'web' } }));
        const nodes = [0, 1].map((i) => ({ hostname: `host-${i}` }));
        await store.put(keys.cluster('alice', 'lab'), JSON.stringify({ user: 'alice', name: 'lab', nodes }));
        await store.put(keys.cluster('bob', 'other'), JSON.stringify({ user: 'bob', name: 'other', nodes: [] }));
        await new ClusterRepo(store, 'default').putImage({ host: hostname(), name: 'base' } as Parameters<ClusterRepo['putImage']>[0]);
        await store.put(keys.op('op-000007'), JSON.stringify({ id: 'op-000007' }));
        await store.put(keys.host('h1'), JSON.stringify({ name: 'h1' }));
      } finally {
        await store.close();
      }
      await execa('knarr', ['dot', 'remote', 'add', 'usb', `file://${tmp.path}/usb`], { env });
      const k = async (...args: string[]) => (await execa('knarr', ['__complete', ...args], { env: { ...env, KNARR_USER: 'alice' } })).stdout;
      expect(await k('job')).toBe('web');
      expect(await k('cluster')).toBe('lab');
      expect(await k('node', 'lab')).toBe('host-0\nhost-1');
      expect(await k('image')).toBe('base');
      expect(await k('op')).toBe('op-000007');
      expect(await k('host')).toBe('h1');
      expect(await k('remote')).toBe('usb');
      expect(await bash('knarr cluster exec lab ', { KNARR_USER: 'alice' })).toEqual(['host-0', 'host-1']);
      expect(await bash('knarr job logs ')).toEqual(['web']);
      expect(await fish('knarr op show ')).toEqual(['op-000007']);
      expect(await fish('knarr dot push pgdata ')).toEqual(['usb']);
      expect(await zsh('knarr image rm ')).toBe('knarr image rm base ');
    }, 60_000);

    it('bash: dot, branch and pool names, paths, and options only after a dash', async () => {
      expect(await bash('knarr dot show ')).toEqual(['pgdata']);
      expect(await bash('knarr dot checkout pgdata ')).toEqual(['experiment', 'master']);
      expect(await bash('knarr dot log pgdata --branch e')).toEqual(['experiment']);
      expect(await bash('knarr pool status ')).toEqual([pool]);
      expect(await bash(`knarr dot mount pgdata ${tmp.path}/po`)).toEqual([`${tmp.path}/pool`]);
      expect(await bash('knarr dot commit pgdata --')).toEqual(expect.arrayContaining(['--message', '--json']));
      // The lookups use the etcd and state directory given on the line.
      const line = `knarr --etcd ${etcd.url} --state-dir ${tmp.path}/state dot show `;
      expect(await bash(line, { KNARR_ETCD: '', KNARR_STATE_DIR: '/nonexistent' })).toEqual(['pgdata']);
    });

    it.skipIf(!integration('docker image completion', haveDockerd() && process.getuid?.() === 0, 'needs root, dockerd, docker and busybox-static'))(
      'job run completes the local docker images; bash keeps words with colons whole',
      async () => {
        const dtmp = await tempDir('knarr-complete-docker-');
        const d = await startDockerd(dtmp.path);
        try {
          await d.docker('tag', d.image, 'web/app:2');
          const e = { DOCKER_HOST: d.env.DOCKER_HOST! };
          expect((await execa('knarr', ['__complete', 'docker-image'], { env: { ...env, ...e } })).stdout.split('\n').sort()).toEqual(
            [d.image, 'web/app:2'].sort(),
          );
          expect(await bashLine('knarr job run -p 8080:80 web/', e)).toEqual(['web/app:2']);
          // bash puts back only what follows the colon.
          expect(await bashLine('knarr job run web/app:', e)).toEqual(['2']);
          expect(await bashLine('knarr dot checkout pgdata ')).toEqual(['experiment', 'master']);
          expect(await fish('knarr job run -d web', e)).toEqual(['web/app:2']);
          expect(await zsh('knarr job run --volume a:b web/', e)).toBe('knarr job run --volume a:b web/app:2 ');
        } finally {
          await d.stop();
          await dtmp.cleanup();
        }
      },
      120_000,
    );

    it('zsh: completes the dot name, and inserts no lone "-" where there is nothing to offer', async () => {
      expect(await zsh('knarr dot show ')).toBe('knarr dot show pgdata ');
      expect(await zsh('knarr dot checkout pgdata e')).toBe('knarr dot checkout pgdata experiment ');
      expect(await zsh('knarr pool status ')).toBe(`knarr pool status ${pool} `);
      expect(await zsh('knarr pool status ', { KNARR_STATE_DIR: `${tmp.path}/empty` })).toBe('knarr pool status ');
      expect(await zsh('knarr dot sh')).toBe('knarr dot show ');
      expect(await zsh('knarr dot show ', {}, 'source')).toBe('knarr dot show pgdata ');
    }, 60_000);

    it('fish: completes the dot name, branches and pools', async () => {
      expect(await fish('knarr dot show ')).toEqual(['pgdata']);
      expect(await fish('knarr dot checkout pgdata ')).toEqual(['experiment', 'master']);
      expect(await fish('knarr pool status ')).toEqual([pool]);
      expect(await fish('knarr completion ')).toEqual(['bash', 'fish', 'zsh']);
    });

    it('an etcd that is down, or that never answers, gives no names and no error, quickly', async () => {
      const hang: Server = createServer(() => undefined);
      await new Promise<void>((r) => hang.listen(0, '127.0.0.1', r));
      const silent = `http://127.0.0.1:${(hang.address() as { port: number }).port}`;
      try {
        for (const url of ['http://127.0.0.1:1', silent]) {
          const started = Date.now();
          const r = await execa('knarr', ['__complete', 'dot'], { env: { ...env, KNARR_ETCD: url }, reject: false });
          expect(r).toMatchObject({ exitCode: 0, stdout: '', stderr: '' });
          expect(Date.now() - started).toBeLessThan(2500);
          expect(await bash('knarr dot show ', { KNARR_ETCD: url })).toEqual([]);
          expect(await fish('knarr dot show ', { KNARR_ETCD: url })).toEqual([]);
        }
        expect(await zsh('knarr dot show ', { KNARR_ETCD: 'http://127.0.0.1:1' })).toBe('knarr dot show ');
      } finally {
        hang.close();
      }
    }, 60_000);
  },
);

import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EngineError, PrerequisiteError, ValidationError } from '../../src/core/errors.js';
import { DockerEngine, ENGINE_API, dockerSocketPath, negotiateApiVersion } from '../../src/host/docker.js';
import { knarr } from '../harness/cli.js';
import { haveDockerd, startDockerd, type Dockerd } from '../harness/dockerd.js';
import { tempDir, type TempDir } from '../harness/tmp.js';
import { integration } from '../harness/tools.js';

describe('DOCKER_HOST', () => {
  it('a unix:// URL names the socket; unset or empty is the standard one', () => {
    expect(dockerSocketPath({ DOCKER_HOST: 'unix:///run/user/0/docker.sock' })).toBe('/run/user/0/docker.sock');
    expect(dockerSocketPath({})).toBe('/var/run/docker.sock');
    expect(dockerSocketPath({ DOCKER_HOST: '' })).toBe('/var/run/docker.sock');
  });
  it.each(['tcp://10.0.0.5:2375', 'ssh://me@host', 'unix://', 'unix://relative.sock', '/var/run/docker.sock'])(
    '%s is refused, naming DOCKER_HOST and the fix',
    (host) => {
      const err = (() => {
        try {
          return dockerSocketPath({ DOCKER_HOST: host });
        } catch (e) {
          return e;
        }
      })();
      expect(err).toBeInstanceOf(ValidationError);
      expect((err as ValidationError).message).toMatch(/^DOCKER_HOST: .* is not supported/);
      expect((err as ValidationError).hint).toMatch(/DOCKER_HOST=unix:\/\//);
    },
  );
});

describe('knarr doctor with a DOCKER_HOST knarr refuses', () => {
  it("reports it as the docker check's finding and goes on with the others", async () => {
    const r = await knarr(['--json', 'doctor'], { env: { DOCKER_HOST: 'tcp://127.0.0.1:2375' } });
    const checks = JSON.parse(r.stdout) as { name: string; status: string; detail: string }[] | { checks: { name: string; status: string; detail: string }[] };
    const list = Array.isArray(checks) ? checks : checks.checks;
    const docker = list.find((c) => c.name === 'docker')!;
    expect(docker.status).toBe('missing');
    expect(docker.detail).toMatch(/^DOCKER_HOST: "tcp:\/\/127.0.0.1:2375" is not supported.*set DOCKER_HOST=unix:\/\//);
    expect(list.length).toBeGreaterThan(1);
  });
});

describe('knarr daemon with a DOCKER_HOST knarr refuses', () => {
  it('refuses to start before it opens the store or writes a token', async () => {
    const tmp = await tempDir('knarr-engine-daemon-');
    try {
      const r = await knarr(['daemon', '--etcd', 'http://127.0.0.1:1'], { env: { DOCKER_HOST: 'tcp://127.0.0.1:2375', KNARR_STATE_DIR: `${tmp.path}/state` } });
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/DOCKER_HOST: "tcp:\/\/127.0.0.1:2375" is not supported/);
      expect(existsSync(`${tmp.path}/state/agent.token`)).toBe(false);
    } finally {
      await tmp.cleanup();
    }
  });
});

describe('the Engine API version', () => {
  it("is the engine's newest, capped at knarr's", () => {
    expect(negotiateApiVersion('1.52', '/s')).toBe(ENGINE_API.newest);
    expect(negotiateApiVersion('1.44', '/s')).toBe('1.44');
    expect(negotiateApiVersion(ENGINE_API.oldest, '/s')).toBe(ENGINE_API.oldest);
  });
  it('refuses an engine older than knarr supports, with the fix', () => {
    expect(() => negotiateApiVersion('1.39', '/s')).toThrow(PrerequisiteError);
    expect(() => negotiateApiVersion('1.9', '/s')).toThrow(/speaks API 1.9/);
  });
  it('reports a socket nobody answers on as a missing prerequisite', async () => {
    const err = await new DockerEngine('/nonexistent/docker.sock', false).list(true).catch((e) => e);
    expect(err).toBeInstanceOf(PrerequisiteError);
    expect(err.message).toBe('no docker engine answers on /nonexistent/docker.sock');
  });
});

const run = integration('docker engine', haveDockerd(), 'dockerd, docker or busybox-static is missing (Debian packages docker.io, busybox-static)');

describe.skipIf(!run)('a real dockerd', () => {
  let tmp: TempDir;
  let d: Dockerd;
  beforeAll(async () => {
    tmp = await tempDir('knarr-engine-');
    d = await startDockerd(tmp.path);
  });
  afterAll(async () => {
    await d?.stop();
    await tmp?.cleanup();
  });

  it("is spoken to at the version its /_ping names (capped at knarr's)", async () => {
    const engineNewest = JSON.parse(await d.docker('version', '--format', '{{json .Server.APIVersion}}')) as string;
    expect(await new DockerEngine(d.socket, false).apiVersion()).toBe(negotiateApiVersion(engineNewest, d.socket));
  });

  it('answers an error as a typed EngineError: 404 exits 3 (not found)', async () => {
    const err = await new DockerEngine(d.socket, false).inspect('knarr-no-such-container').catch((e) => e);
    expect(err).toBeInstanceOf(EngineError);
    expect(err.status).toBe(404);
    expect(err.exitCode).toBe(3);
    expect(err.message).toMatch(/no such container/i);
  });

  it('a name in use is a conflict (exit 4)', async () => {
    const engine = new DockerEngine(d.socket, false);
    const id = await engine.create('knarr-dup', { Image: d.image, Cmd: ['true'] });
    try {
      const err = await engine.create('knarr-dup', { Image: d.image, Cmd: ['true'] }).catch((e) => e);
      expect(err).toBeInstanceOf(EngineError);
      expect(err.status).toBe(409);
      expect(err.exitCode).toBe(4);
    } finally {
      await engine.remove(id);
    }
  });

  it('a version the engine refuses (it was upgraded meanwhile) is negotiated again', async () => {
    const engine = new DockerEngine(d.socket, false, '1.5');
    expect(Array.isArray(await engine.list(true))).toBe(true);
    expect(await engine.apiVersion()).toBe(await new DockerEngine(d.socket, false).apiVersion());
  });

  it('a unix:// DOCKER_HOST is honoured; a tcp:// one is refused, never replaced by the local socket', async () => {
    const env = { DOCKER_HOST: `unix://${d.socket}`, KNARR_STATE_DIR: `${tmp.path}/state` };
    const ok = await knarr(['job', 'run', '--network', 'none', d.image, '--', 'echo', 'hi'], { env });
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toBe('hi\n');
    const refused = await knarr(['job', 'run', '--network', 'none', d.image, '--', 'echo', 'hi'], { env: { ...env, DOCKER_HOST: 'tcp://127.0.0.1:2375' } });
    expect(refused.code).toBe(2);
    expect(refused.stdout).toBe('');
    expect(refused.stderr).toMatch(/DOCKER_HOST: "tcp:\/\/127.0.0.1:2375" is not supported/);
    expect(refused.stderr).toMatch(/hint: set DOCKER_HOST=unix:\/\//);
  });
});

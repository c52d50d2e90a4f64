import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { CommitRecord } from '../core/dots.js';
import { splitWords } from '../core/job-spec.js';
import { ConflictError, ExternalCommandError, NotFoundError, PrerequisiteError } from '../core/errors.js';
import { validateManifest, type Manifest, type ManifestCommit, type RemoteEndpoint, type StreamFormat, type StreamSender } from '../core/remote.js';
import { Tap } from './remote-file.js';
import { SealUnframer, sealOutput } from './stream-seal.js';
import { formatArgv, type Runner } from './runner.js';

export interface SshTarget {
  url: string;
  user: string | null;
  host: string;
  port: number | null;
  /** The remote host's knarr state directory, from the URL's path. */
  stateDir: string | null;
}

/** How often a stream is sent again after the far side's transient receive failure. */
const SEND_ATTEMPTS = 3;

/**
 * knarr on another host, reached with ssh: `knarr dot manifest|receive|send` run there and
 * streams travel through ssh's stdin and stdout. ssh hands the remote shell one command line,
 * so every argument is single-quoted; KNARR_SSH_CONFIG names an ssh_config, KNARR_REMOTE_KNARR
 * the knarr command on the remote host (default "knarr").
 */
export class SshRemote implements RemoteEndpoint {
  constructor(
    private readonly target: SshTarget,
    private readonly runner: Runner,
    private readonly settings: { knarr: string; sshConfig: string | null },
  ) {}

  get url(): string {
    return this.target.url;
  }

  private argv(remote: string[]): string[] {
    const t = this.target;
    // A command of several words ("sudo knarr") is split as a shell would, then each word quoted.
    const knarr = [...(splitWords(this.settings.knarr) ?? ['knarr']), ...(t.stateDir ? ['--state-dir', t.stateDir] : [])];
    return [
      'ssh',
      ...(this.settings.sshConfig ? ['-F', this.settings.sshConfig] : []),
      '-o',
      'BatchMode=yes',
      ...(t.port ? ['-p', String(t.port)] : []),
      t.user ? `${t.user}@${t.host}` : t.host,
      '--',
      formatArgv([...knarr, ...remote]),
    ];
  }

  async ensureReachable(): Promise<void> {
    const r = await this.runner.run(this.argv(['--version']), { mutates: false, okExitCodes: [255, 127, 126] });
    if (r.exitCode === 255)
      throw new NotFoundError(`cannot reach ${this.url} over ssh: ${r.stderr.trim().split('\n').pop()}`, {
        hint: 'check the host, the key (KNARR_SSH_CONFIG) and that sshd runs',
      });
    if (r.exitCode !== 0)
      throw new PrerequisiteError(`knarr is not installed on ${this.target.host}`, { hint: 'install knarr there, or set KNARR_REMOTE_KNARR to its path' });
  }

  async readManifest(dot: string): Promise<Manifest | null> {
    const r = await this.runner.run(this.argv(['--json', 'dot', 'manifest', dot]), { mutates: false, okExitCodes: [3] });
    if (r.exitCode === 3) return null;
    return validateManifest(`${this.url} dot manifest ${dot}`, JSON.parse(r.stdout));
  }

  async putCommit(
    dot: string,
    branch: string,
    record: CommitRecord,
    base: string | null,
    _format: StreamFormat,
    sender: StreamSender,
  ): Promise<ManifestCommit> {
    const argv = this.argv(['dot', 'receive', dot, '--sealed', '--branch', branch, '--record', JSON.stringify(record), ...(base ? ['--base', base] : [])]);
    if (this.runner.dryRun) {
      this.runner.plan([...sender.argv, '|', ...argv]);
      return { record, base, file: record.id, bytes: 0, sha256: '' };
    }
    const what = `stream of commit ${record.id} of ${dot}`;
    for (let attempt = 1; ; attempt++) {
      // Framed with its size and checksum: the far side checks them before it records anything.
      const { framed, sealed } = sealOutput(async (out) => {
        const tap = new Tap(sender.progress);
        await Promise.all([sender.produce(tap), pipeline(tap, out)]);
      });
      const [sent, received] = await Promise.allSettled([sealed, this.runner.pipe(argv, { stdin: framed, redirect: '< sealed stream' })]);
      if (sent.status === 'fulfilled' && received.status === 'fulfilled') {
        const seal = sent.value;
        return { record, base, file: record.id, bytes: seal.bytes, sha256: '', crc32: seal.value };
      }
      // The far side's word comes first: a sender cut off by it only says its pipe broke.
      const e: unknown = received.status === 'rejected' ? received.reason : (sent as PromiseRejectedResult).reason;
      // zfs-fuse on the far side now and then fails an incremental receive with an I/O error that the same stream sent again does not meet.
      const transient = e instanceof ExternalCommandError && e.argv[0] === 'ssh' && /cannot receive incremental stream: I\/O error/.test(e.stderr);
      if (transient && attempt < SEND_ATTEMPTS) {
        await new Promise((r) => setTimeout(r, 500 * attempt));
        continue;
      }
      if (e instanceof ExternalCommandError && e.argv[0] === 'ssh' && e.exitStatus !== 255) {
        // The far side's own words name the stream and what was wrong with it.
        const damaged = e.stderr
          .split('\n')
          .find((l) => l.includes(' is damaged: '))
          ?.replace(/^knarr: /, '');
        if (damaged)
          throw new ConflictError(`${this.url} refused a stream: ${damaged}`, {
            hint: 'nothing was recorded there; push again, and if it fails again check the network and the disks on both hosts',
          });
        throw new ExternalCommandError(e.argv, e.exitStatus, e.stderr, { hint: `the knarr on ${this.target.host} refused the ${what}` });
      }
      throw e;
    }
  }

  async saveManifest(): Promise<void> {
    /* the remote knarr records each commit as it receives it */
  }

  async fetchCommit(dot: string, entry: ManifestCommit, consume: (input: Readable, source: string) => Promise<void>): Promise<void> {
    const argv = this.argv(['dot', 'send', dot, '--sealed', entry.record.id, ...(entry.base ? ['--base', entry.base] : [])]);
    const source = `${this.url} ${entry.record.id}`;
    if (this.runner.dryRun) {
      this.runner.plan(argv);
      await consume(new PassThrough().end(), source);
      return;
    }
    const pass = new PassThrough();
    // Checked while it is read, its end held back until the sender's seal matches: a damaged stream is never applied whole.
    const unsealed = new SealUnframer(
      `stream of commit ${entry.record.id} of ${dot} from ${this.url}`,
      'pull again; if it fails again, check the network and the disks on both hosts',
    );
    pipeline(pass, unsealed).catch(() => undefined);
    unsealed.on('error', () => undefined);
    const sending = this.runner.pipe(argv, { stdout: pass, mutates: false });
    // If the receiving side fails first, stop the sender too.
    const [sent, received] = await Promise.allSettled([sending, consume(unsealed, source).catch((e) => (pass.destroy(), Promise.reject(e)))]);
    const far = sent.status === 'rejected' ? sent.reason : null;
    const farFailed = far instanceof ExternalCommandError && far.argv[0] === 'ssh';
    // The far side's own failure says more than the cut stream it left; a sender stopped because this side failed does not.
    const wrapped = () => new ExternalCommandError(far.argv, far.exitStatus, far.stderr, { hint: `the remote knarr on ${this.target.host} failed` });
    if (unsealed.failure) throw farFailed ? wrapped() : unsealed.failure;
    if (received.status === 'rejected') throw received.reason;
    if (far !== null) throw farFailed ? wrapped() : far;
  }
}

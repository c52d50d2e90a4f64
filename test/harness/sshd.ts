import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { execa } from 'execa';
import { freePort } from './ports.js';
import { haveTools } from './tools.js';

export interface Sshd {
  port: number;
  /** ssh_config for the client side: the key, no known-hosts prompts. */
  clientConfig: string;
  stop(): Promise<void>;
}

export const haveSshd = () => haveTools('sshd', 'ssh', 'ssh-keygen');

/** A private sshd on 127.0.0.1 and a free port, with its own host key and one client key. */
export async function startSshd(dir: string): Promise<Sshd> {
  mkdirSync('/run/sshd', { recursive: true });
  await execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', `${dir}/hostkey`]);
  await execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', `${dir}/client`]);
  writeFileSync(`${dir}/authorized_keys`, readFileSync(`${dir}/client.pub`));
  const port = await freePort();
  writeFileSync(
    `${dir}/sshd_config`,
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${dir}/hostkey`,
      `PidFile ${dir}/sshd.pid`,
      `AuthorizedKeysFile ${dir}/authorized_keys`,
      'PermitRootLogin prohibit-password',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'StrictModes no',
      '',
    ].join('\n'),
  );
  await execa('/usr/sbin/sshd', ['-f', `${dir}/sshd_config`, '-E', `${dir}/sshd.log`]);
  const clientConfig = `${dir}/ssh_config`;
  writeFileSync(
    clientConfig,
    ['Host *', `  IdentityFile ${dir}/client`, '  UserKnownHostsFile /dev/null', '  StrictHostKeyChecking no', '  LogLevel ERROR', ''].join('\n'),
  );
  for (let i = 0; ; i++) {
    const r = await execa('ssh', ['-F', clientConfig, '-o', 'BatchMode=yes', '-p', String(port), 'root@127.0.0.1', 'true'], { reject: false });
    if (r.exitCode === 0) break;
    if (i > 50) throw new Error(`test sshd did not answer: ${r.stderr}`);
    await new Promise((res) => setTimeout(res, 100));
  }
  return {
    port,
    clientConfig,
    async stop() {
      try {
        process.kill(Number(readFileSync(`${dir}/sshd.pid`, 'utf8').trim()), 'SIGTERM');
      } catch {
        /* already gone */
      }
    },
  };
}

import { createCipheriv, createDecipheriv, createHash, createPrivateKey, hkdfSync, randomBytes, X509Certificate } from 'node:crypto';
import { chmod, mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { connect } from 'node:tls';
import { UserError } from '../core/errors.js';
import type { Runner } from './runner.js';

/** The files etcd and its clients use for TLS (paths). */
export interface EtcdTlsFiles {
  /** The fleet CA's certificate: what servers' certificates are checked against. */
  caCert: string;
  /** The fleet CA and the join CA: what etcd accepts client certificates from. */
  trusted: string;
  memberCert: string;
  memberKey: string;
  clientCert: string;
  clientKey: string;
}

const CA_DAYS = '3650';
const OPENSSL = ['openssl', 'req', '-config', '/dev/null'];

/** Writes a secret file 0600 through a temporary file and a rename. */
export async function writeSecret(path: string, content: string | Buffer): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.tmp`;
  const fh = await open(tmp, 'w', 0o600);
  try {
    await fh.writeFile(content);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
}

/** A new P-256 key (openssl writes it 0600) and a self-signed CA certificate for it. */
export async function makeCa(runner: Runner, keyFile: string, certFile: string, cn: string): Promise<void> {
  await runner.run(['openssl', 'genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', keyFile]);
  await selfSignCa(runner, keyFile, certFile, cn);
}

/** A CA certificate for an existing key: the same key and name on every host make interchangeable issuers. */
export async function selfSignCa(runner: Runner, keyFile: string, certFile: string, cn: string): Promise<void> {
  await runner.run([
    ...OPENSSL,
    '-x509',
    '-new',
    '-key',
    keyFile,
    '-subj',
    `/CN=${cn}`,
    '-days',
    CA_DAYS,
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
    '-out',
    certFile,
  ]);
}

/** The join CA's key is the token's 32-byte secret, as an Ed25519 seed: a holder of the token can sign client certificates etcd accepts. */
export function joinKeyPem(secret: Buffer): string {
  const der = Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), secret]);
  return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }).export({ format: 'pem', type: 'pkcs8' }).toString();
}

export interface CertRequest {
  cn: string;
  /** IP addresses and DNS names; none for a client-only certificate. */
  ips?: string[];
  dns?: string[];
  server: boolean;
  caCert: string;
  caKey: string;
  certOut: string;
  keyOut: string;
  /** Validity in days (default ten years); the join's bootstrap certificate lives a day. */
  days?: number;
  /** Appends the CA certificate after the leaf, so a joining host sees the CA in the TLS handshake. */
  chain?: boolean;
}

/** A new key and a certificate for it signed by the CA. */
export async function issueCert(runner: Runner, r: CertRequest): Promise<void> {
  await runner.run(['openssl', 'genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', r.keyOut]);
  const sans = [...(r.ips ?? []).map((ip) => `IP:${ip}`), ...(r.dns ?? []).map((d) => `DNS:${d}`)];
  await runner.run([
    ...OPENSSL,
    '-new',
    '-x509',
    '-key',
    r.keyOut,
    '-subj',
    `/CN=${r.cn}`,
    '-CA',
    r.caCert,
    '-CAkey',
    r.caKey,
    '-days',
    String(r.days ?? CA_DAYS),
    '-addext',
    'basicConstraints=critical,CA:FALSE',
    '-addext',
    'keyUsage=critical,digitalSignature,keyEncipherment',
    '-addext',
    `extendedKeyUsage=${r.server ? 'serverAuth,clientAuth' : 'clientAuth'}`,
    ...(sans.length > 0 ? ['-addext', `subjectAltName=${sans.join(',')}`] : []),
    '-out',
    r.certOut,
  ]);
  if (r.chain && !runner.dryRun) await writeSecret(r.certOut, `${(await readFile(r.certOut, 'utf8')).trimEnd()}\n${await readFile(r.caCert, 'utf8')}`);
  if (!runner.dryRun) await chmod(r.keyOut, 0o600);
}

/** sha256 of a certificate's DER, hex: what a join token names the fleet CA by. */
export function certHash(pem: string): string {
  return createHash('sha256').update(new X509Certificate(pem).raw).digest('hex');
}

const cipherKey = (secret: Buffer) => Buffer.from(hkdfSync('sha256', secret, Buffer.alloc(0), 'knarr etcd ca key', 32));

/** The CA key as it is kept in etcd: AES-256-GCM under a key derived from the token's secret, so a snapshot alone cannot sign certificates. */
export function sealCaKey(secret: Buffer, pem: string): string {
  const iv = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', cipherKey(secret), iv);
  const body = Buffer.concat([c.update(pem, 'utf8'), c.final()]);
  return Buffer.concat([iv, c.getAuthTag(), body]).toString('base64');
}

export function openCaKey(secret: Buffer, sealed: string): string | null {
  const raw = Buffer.from(sealed, 'base64');
  try {
    const d = createDecipheriv('aes-256-gcm', cipherKey(secret), raw.subarray(0, 12));
    d.setAuthTag(raw.subarray(12, 28));
    return Buffer.concat([d.update(raw.subarray(28)), d.final()]).toString('utf8');
  } catch {
    return null;
  }
}

/**
 * The CA certificate a member presents, checked against the token's hash: the certificate chain
 * the server sends must hold a CA with that hash, and the server's own certificate must be signed
 * by it and name the address dialled. Throws a UserError naming both hashes otherwise.
 */
export async function fetchVerifiedCa(url: string, caHash: string, client: { cert: string; key: string }, timeoutMs = 5000): Promise<string> {
  const u = new URL(url);
  const host = u.hostname.replace(/^\[|\]$/g, '');
  const chain = await new Promise<X509Certificate[]>((resolve, reject) => {
    const sock = connect({ host, port: Number(u.port), rejectUnauthorized: false, cert: client.cert, key: client.key, timeout: timeoutMs });
    sock.once('secureConnect', () => {
      const certs: X509Certificate[] = [];
      let c = sock.getPeerCertificate(true) as import('node:tls').DetailedPeerCertificate | undefined;
      const seen = new Set<string>();
      while (c?.raw && !seen.has(c.fingerprint256)) {
        seen.add(c.fingerprint256);
        certs.push(new X509Certificate(c.raw));
        c = c.issuerCertificate;
      }
      sock.destroy();
      resolve(certs);
    });
    sock.once('timeout', () => sock.destroy(new Error(`no TLS answer within ${timeoutMs}ms`)));
    sock.once('error', reject);
  }).catch((e: Error) => {
    throw new UserError(`cannot reach ${url} over TLS: ${e.message}`, { hint: "give a member's client URL as `knarr etcd status` on it shows it" });
  });
  const leaf = chain[0];
  const ca = chain.find((c) => createHash('sha256').update(c.raw).digest('hex') === caHash);
  if (!leaf || !ca) {
    const got = chain.slice(1).map((c) => createHash('sha256').update(c.raw).digest('hex'));
    throw new UserError(
      `the etcd at ${url} does not present the CA the token names (token: sha256:${caHash}; presented: ${got.map((h) => `sha256:${h}`).join(', ') || 'no CA'})`,
      { hint: 'wrong token, wrong address, or someone in between: take the token again with `knarr etcd token` on a member; nothing was changed' },
    );
  }
  const names = host.includes(':') || /^\d+\.\d+\.\d+\.\d+$/.test(host) ? leaf.checkIP(host) : leaf.checkHost(host);
  if (!leaf.verify(ca.publicKey) || !names) {
    throw new UserError(`the certificate ${url} presents is not one the token's CA issued for ${host}`, {
      hint: 'someone in between, or the wrong address: nothing was changed',
    });
  }
  return ca.toString();
}

/** Removes a directory of short-lived credentials. */
export async function dropDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

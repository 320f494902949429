/**
 * A throwaway certificate authority and a server certificate it signed (for 127.0.0.1 and
 * localhost), made with the openssl CLI in a temp dir at test time: nothing secret is committed,
 * and every call is a CA of its own, so a second one is a CA the first one's clients do not trust.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from './redis-processes.ts';

export interface TestTls {
  readonly dir: string;
  /** The CA's certificate (PEM): what `REDIS_TLS_CA_FILE` points at. */
  readonly caFile: string;
  readonly ca: string;
  /** The server's certificate and key, for redis-server's `--tls-cert-file` / `--tls-key-file`. */
  readonly certFile: string;
  readonly keyFile: string;
  remove(): void;
}

export async function makeTestTls(): Promise<TestTls> {
  const dir = mkdtempSync(join(tmpdir(), 'toolq-tls-'));
  const file = (name: string) => join(dir, name);
  const openssl = (args: readonly string[]) =>
    run('openssl', [...args]).catch((err: Error) => {
      throw new Error(`openssl ${args[0]} failed (is openssl installed?): ${err.message}`, { cause: err });
    });
  try {
    // P-256 keys: generated in milliseconds, where RSA keys take a noticeable part of a test.
    const ecKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
    // biome-ignore format: one flag and its value per pair
    await openssl([
      'req', '-x509', ...ecKey, '-keyout', file('ca.key'), '-out', file('ca.crt'),
      // A name of its own: two test CAs with one name would look like one CA whose signature is wrong.
      '-days', '2', '-subj', `/CN=toolq test CA ${randomBytes(4).toString('hex')}`,
    ]);
    // biome-ignore format: one flag and its value per pair
    await openssl([
      'req', ...ecKey, '-keyout', file('server.key'), '-out', file('server.csr'), '-subj', '/CN=localhost',
    ]);
    writeFileSync(
      file('server.ext'),
      [
        'subjectAltName = IP:127.0.0.1, DNS:localhost',
        'basicConstraints = CA:FALSE',
        'keyUsage = digitalSignature, keyEncipherment',
        // clientAuth too: a replica or sentinel presents this certificate when it connects.
        'extendedKeyUsage = serverAuth, clientAuth',
        '',
      ].join('\n'),
    );
    // biome-ignore format: one flag and its value per pair
    await openssl([
      'x509', '-req', '-in', file('server.csr'), '-CA', file('ca.crt'), '-CAkey', file('ca.key'),
      '-CAcreateserial', '-out', file('server.crt'), '-days', '2', '-extfile', file('server.ext'),
    ]);
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    dir,
    caFile: file('ca.crt'),
    ca: readFileSync(file('ca.crt'), 'utf8'),
    certFile: file('server.crt'),
    keyFile: file('server.key'),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** redis-server flags: TLS only (the plain port off), clients not asked for certificates. */
export function tlsServerArgs(tls: TestTls, port: number): string[] {
  // biome-ignore format: one flag and its value per pair
  return [
    '--port', '0', '--tls-port', String(port),
    '--tls-cert-file', tls.certFile, '--tls-key-file', tls.keyFile, '--tls-ca-cert-file', tls.caFile,
    '--tls-auth-clients', 'no',
  ];
}

// Throwaway certificates for the TLS tests, made with Debian's openssl: a CA, a server certificate for
// localhost and 127.0.0.1, a client certificate, a second CA nobody trusts, a server certificate that has
// expired and one for another host name. Everything lives in one temp folder; remove() deletes it.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Certs {
  dir: string;
  /** the CA that signed server, client, expired and wrongHost */
  ca: string;
  /** a CA that signed nothing here: trusting it instead of `ca` is "the wrong CA" */
  otherCa: string;
  server: { cert: string; key: string };
  client: { cert: string; key: string };
  /** valid from 2020-01-01 to 2020-01-02 */
  expired: { cert: string; key: string };
  /** names only wrong-host.invalid */
  wrongHost: { cert: string; key: string };
  remove(): void;
}

function ssl(dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

function caCert(dir: string, name: string): void {
  ssl(dir, ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.pem`, '-days', '3', '-subj', `/CN=jobrunner test ${name}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
}

/** a leaf signed by ca.pem through `openssl ca` (which takes explicit start and end dates) */
function leaf(dir: string, name: string, san: string | undefined, usage: 'serverAuth' | 'clientAuth', dates: { start?: string; end?: string } = {}): { cert: string; key: string } {
  ssl(dir, ['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`]);
  const ext = [`[ext]`, 'basicConstraints=CA:FALSE', `extendedKeyUsage=${usage}`, ...(san ? [`subjectAltName=${san}`] : [])].join('\n');
  writeFileSync(join(dir, `${name}.ext`), ext + '\n');
  const args = ['ca', '-batch', '-config', 'ca.cnf', '-in', `${name}.csr`, '-out', `${name}.pem`, '-extfile', `${name}.ext`, '-extensions', 'ext', '-notext'];
  if (dates.start) args.push('-startdate', dates.start);
  args.push(...(dates.end ? ['-enddate', dates.end] : ['-days', '3']));
  ssl(dir, args);
  return { cert: join(dir, `${name}.pem`), key: join(dir, `${name}.key`) };
}

/** Makes every certificate (about a second). */
export function makeCerts(): Certs {
  const dir = mkdtempSync(join(tmpdir(), 'jobrunner-certs-'));
  try {
    caCert(dir, 'ca');
    caCert(dir, 'other-ca');
    writeFileSync(join(dir, 'index.txt'), '');
    writeFileSync(join(dir, 'serial'), '1000\n');
    writeFileSync(
      join(dir, 'ca.cnf'),
      ['[ca]', 'default_ca = test', '[test]', `dir = ${dir}`, 'database = $dir/index.txt', 'serial = $dir/serial', 'new_certs_dir = $dir', 'certificate = $dir/ca.pem', 'private_key = $dir/ca.key', 'default_md = sha256', 'policy = any', 'unique_subject = no', 'copy_extensions = none', '[any]', 'commonName = supplied'].join('\n') + '\n',
    );
    return {
      dir,
      ca: join(dir, 'ca.pem'),
      otherCa: join(dir, 'other-ca.pem'),
      server: leaf(dir, 'server', 'DNS:localhost,IP:127.0.0.1', 'serverAuth'),
      client: leaf(dir, 'client', undefined, 'clientAuth'),
      expired: leaf(dir, 'expired', 'DNS:localhost,IP:127.0.0.1', 'serverAuth', { start: '20200101000000Z', end: '20200102000000Z' }),
      wrongHost: leaf(dir, 'wrong-host', 'DNS:wrong-host.invalid', 'serverAuth'),
      remove: () => rmSync(dir, { recursive: true, force: true }),
    };
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

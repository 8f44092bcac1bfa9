/**
 * Certificates made at test time with Debian's openssl (nothing secret is committed): one CA,
 * a certificate for the servers on 127.0.0.1 (also usable as a client's, as routes between
 * servers need), and a client certificate — each a file in `dir`.
 */
import { execFile } from "node:child_process";
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

export interface TestCerts {
  caFile: string;
  /** For servers (NATS, HTTP) on 127.0.0.1 / localhost; serverAuth and clientAuth. */
  serverCertFile: string;
  serverKeyFile: string;
  /** A client's, signed by the same CA. */
  clientCertFile: string;
  clientKeyFile: string;
  /** A CA nobody else uses: certificates it signed are trusted by no server. */
  strangerCaFile: string;
}

async function openssl(args: string[]): Promise<void> {
  await run("openssl", args);
}

async function ca(dir: string, name: string): Promise<{ cert: string; key: string }> {
  const key = path.join(dir, `${name}.key`);
  const cert = path.join(dir, `${name}.pem`);
  await openssl(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", `/CN=${name}`]);
  return { cert, key };
}

async function signed(dir: string, name: string, issuer: { cert: string; key: string }, extensions: string): Promise<{ cert: string; key: string }> {
  const key = path.join(dir, `${name}.key`);
  const csr = path.join(dir, `${name}.csr`);
  const cert = path.join(dir, `${name}.pem`);
  const ext = path.join(dir, `${name}.ext`);
  await writeFile(ext, extensions);
  await openssl(["req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", `/CN=${name}`]);
  await openssl(["x509", "-req", "-in", csr, "-CA", issuer.cert, "-CAkey", issuer.key, "-CAcreateserial", "-out", cert, "-days", "2", "-extfile", ext]);
  return { cert, key };
}

export async function makeTestCerts(dir: string): Promise<TestCerts> {
  const authority = await ca(dir, "jade-test-ca");
  const stranger = await ca(dir, "stranger-ca");
  const server = await signed(dir, "server", authority, "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n");
  const client = await signed(dir, "client", authority, "extendedKeyUsage=clientAuth\n");
  return {
    caFile: authority.cert,
    serverCertFile: server.cert,
    serverKeyFile: server.key,
    clientCertFile: client.cert,
    clientKeyFile: client.key,
    strangerCaFile: stranger.cert,
  };
}

#!/bin/sh
# The compose cluster's secrets, made once into $SECRETS (/secrets in the `secrets` service,
# ./deploy/secrets on the host, git-ignored) and kept: a CA, one certificate for every server
# (the nats and jade services by name, and localhost for clients on the host; serverAuth and
# clientAuth, since routes between nats-servers are clients of each other), and the NATS
# identities (`jade auth init`: node, admin, the authorization file the servers include).
set -eu
SECRETS="${SECRETS:-/secrets}"
JADE="${JADE:-node /app/bin/jade.mjs}"
cd "$SECRETS"
if [ ! -f ca.pem ]; then
  openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 825 -subj /CN=jadevectordb-compose-ca 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=jadevectordb 2>/dev/null
  printf 'subjectAltName=DNS:nats1,DNS:nats2,DNS:nats3,DNS:jade1,DNS:jade2,DNS:jade3,DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n' > server.ext
  openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 825 -extfile server.ext 2>/dev/null
  rm -f server.csr server.ext ca.srl
  chmod 0600 ca.key server.key
fi
$JADE auth init --data "$SECRETS" >/dev/null
echo "secrets ready in $SECRETS"

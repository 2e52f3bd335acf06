#!/usr/bin/env bash
# Builds a seed corpus for every fuzz target from the project's own test vectors
# (../../shared/interop-vectors, as laid beside the repository) and runs each target for a while.
#
#   fuzz/smoke.sh [SECONDS_PER_TARGET] [TARGET...]      (default: 60 s, every target)
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`) and openssl. cargo-fuzz wants a nightly
# compiler; RUSTC_BOOTSTRAP=1 lets the stable one accept its -Z flags. Not part of CI: record the
# run time and any crash in docs/SECURITY.md, and turn every crash into a regression test.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-60}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(csr token ocsp_request ocsp_response crl ca_json api_json key_file ssh_public_key acme_request
        http01_response dns_answer)
fi
vectors=../../shared/interop-vectors
[ -d "$vectors" ] || { echo "smoke.sh: $vectors is missing" >&2; exit 1; }
export RUSTC_BOOTSTRAP=1

seed() { # target files...
    local target=$1
    shift
    mkdir -p "corpus/$target"
    for f in "$@"; do
        [ -f "$f" ] && cp "$f" "corpus/$target/$(basename "$(dirname "$f")")-$(basename "$f")"
    done
    return 0
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
ca=$vectors/certificates/ca/testdata/secrets

# CSRs, PEM and DER.
seed csr "$vectors"/certificates/authority/provisioner/testdata/certs/*.csr \
    "$vectors"/certificates/authority/testdata/certs/*.csr
for csr in "$vectors"/certificates/authority/provisioner/testdata/certs/*.csr; do
    openssl req -in "$csr" -outform DER -out "corpus/csr/$(basename "$csr").der" 2>/dev/null || true
done
# Tokens: step's own, and the JWS-shaped JWE strings of the provisioner keys.
seed token "$vectors"/cli/token/jwk_ott.jwt
# OCSP requests (with and without a nonce) and a response signed with step's test intermediate.
openssl pkey -in "$ca/intermediate_ca_key" -passin pass:password -out "$work/int.key"
leaf=$vectors/certificates/authority/testdata/certs/foo.crt
mkdir -p corpus/ocsp_request corpus/ocsp_response corpus/crl
openssl ocsp -issuer "$ca/intermediate_ca.crt" -cert "$leaf" -reqout corpus/ocsp_request/nonce.der 2>/dev/null
openssl ocsp -sha256 -issuer "$ca/intermediate_ca.crt" -cert "$leaf" -no_nonce \
    -reqout corpus/ocsp_request/sha256.der
: > "$work/index.txt"
openssl ocsp -index "$work/index.txt" -rsigner "$ca/intermediate_ca.crt" -rkey "$work/int.key" \
    -CA "$ca/intermediate_ca.crt" -reqin corpus/ocsp_request/nonce.der \
    -respout corpus/ocsp_response/unknown.der
printf '\x30\x03\x0a\x01\x01' > corpus/ocsp_response/malformed.der
# CRLs: one signed by step's test intermediate, and certificates (the same DER shapes).
cat > "$work/ca.cnf" <<CNF
[ca]
default_ca = test
[test]
database = $work/index.txt
crlnumber = $work/crlnumber
default_md = sha256
default_crl_days = 1
CNF
echo 01 > "$work/crlnumber"
openssl ca -config "$work/ca.cnf" -gencrl -keyfile "$work/int.key" -cert "$ca/intermediate_ca.crt" \
    -out "$work/crl.pem" && openssl crl -in "$work/crl.pem" -outform DER -out corpus/crl/step.der
for cert in "$ca"/*.crt "$leaf"; do
    openssl x509 -in "$cert" -outform DER -out "corpus/crl/$(basename "$cert").der" 2>/dev/null || true
done
# Configurations.
seed ca_json "$vectors"/certificates/ca/testdata/*.json "$vectors"/certificates/examples/pki/config/ca.json \
    "$vectors"/certificates/ca/identity/testdata/config/ca.json
# API bodies.
mkdir -p corpus/api_json
printf '{"csr":"-----BEGIN CERTIFICATE REQUEST-----\\nMIIB\\n-----END CERTIFICATE REQUEST-----\\n","ott":"a.b.c","notAfter":"24h"}' \
    > corpus/api_json/sign.json
printf '{"serial":"30671613121311574910895916201205874495","ott":"a.b.c","reasonCode":1,"reason":"key lost","passive":false}' \
    > corpus/api_json/revoke.json
# Key files and encrypted JWKs.
seed key_file "$ca"/*_key "$ca"/ott_key "$vectors"/crypto/pemutil/testdata/*.pem \
    "$vectors"/crypto/jose/testdata/*.enc.*.json

# SSH keys and certificates.
seed ssh_public_key "$vectors"/crypto/jose/testdata/host-key.pub "$vectors"/crypto/jose/testdata/host-key-cert.pub \
    "$vectors"/crypto/jose/testdata/ssh-ca.pub "$vectors"/crypto/jose/testdata/host-key \
    "$vectors"/certificates/authority/testdata/certs/ssh_*_ca_key.pub

# ACME request bodies.
mkdir -p corpus/acme_request
printf '{"protected":"eyJhbGciOiJFUzI1NiIsIm5vbmNlIjoibiIsInVybCI6InUiLCJraWQiOiJrIn0","payload":"","signature":"AAAA"}' \
    > corpus/acme_request/post-as-get.json
printf '{"type":"dns","value":"*.example.com"}' > corpus/acme_request/identifier.json
printf 'aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE' > corpus/acme_request/cert-id.txt

# http-01 answers: plain, chunked, and the chunk that once split a UTF-8 character.
mkdir -p corpus/http01_response corpus/dns_answer
printf 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabcde' > corpus/http01_response/plain.txt
printf 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n' \
    > corpus/http01_response/chunked.txt
printf 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n\xc3\xa9\r\n0\r\n\r\n' \
    > corpus/http01_response/split-utf8.txt
# A DNS answer: id 7, one question and one TXT record "abc" for a.test.
printf '\x00\x07\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00\x01a\x04test\x00\x00\x10\x00\x01\xc0\x0c\x00\x10\x00\x01\x00\x00\x00\x3c\x00\x04\x03abc' \
    > corpus/dns_answer/txt.bin

for target in "${targets[@]}"; do
    echo "== $target ($seconds s)"
    cargo fuzz run "$target" "corpus/$target" -- -max_total_time="$seconds" -rss_limit_mb=4096
done

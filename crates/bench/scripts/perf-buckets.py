#!/usr/bin/env python3
"""Where a mayfly-ca profile's CPU goes, by stage: each sample of `perf script` output goes to
the bucket of its innermost frame that a rule below names (walking from the leaf up), so a
wrapper (the HTTP server, the audit middleware) gets only what no inner stage claims.

    perf record -e cpu-clock -F 999 --call-graph dwarf,32768 -p $PID -o perf.data   # during a run
    perf script -i perf.data -F comm,tid,ip,sym > stacks.txt
    crates/bench/scripts/perf-buckets.py stacks.txt 342    # 342: the run's µs a certificate

Prints a Markdown table: bucket, share of the samples, and that share of the µs given.
"""
import re
import sys
from collections import Counter

RULES = [
    ("crypto: ECDSA verification", r"ecdsa_do_verify|ECDSA_verify|EVP_DigestVerify"),
    ("crypto: ECDSA signature (leaf)", r"ECDSA_sign|ecdsa_sign|EcdsaKeyPair::sign|EVP_DigestSign"),
    ("crypto: SHA-256, other", r"sha256|SHA256"),
    ("SQLite: fsync", r"fsync|ext4_sync_file|jbd2|file_write_and_wait"),
    ("SQLite: WAL and file writes", r"pwrite|ext4_file_write|vfs_write|walWrite|walChecksum"),
    ("SQLite: engine", r"sqlite3|pcache|btree|Vdbe|vdbe"),
    ("store: sqlx, hand-offs to its threads", r"sqlx_|flume|mayfly_store"),
    ("TLS: record encryption", r"aes_gcm|aesni|gcm_|ghash|aes_hw"),
    ("kernel: TCP send/recv", r"tcp_sendmsg|tcp_recvmsg|sock_write|sock_read|__sys_sendto|"
     r"__sys_recvfrom|ksys_write|ksys_read|do_writev|do_iter_write|__x64_sys_write|__x64_sys_read"),
    ("kernel: epoll, futex, scheduling", r"epoll|futex|schedule|finish_task_switch|try_to_wake_up"),
    ("TLS: rustls framing", r"rustls::"),
    ("JSON encode/decode", r"serde_json|serde_core|serde::"),
    ("PEM, base64", r"pem::|base64::|certificate_pem"),
    ("DER: CSR parse, leaf build", r"x509_parser|der_parser|asn1_rs|rcgen::|yasna::|mayfly_pki::der|"
     r"mayfly_pki::csr|mayfly_pki::cert|mayfly_pki::signer"),
    ("token: JWS parse, claims, checks", r"mayfly_pki::jose|mayfly_authority::credential|"
     r"mayfly_authority::token"),
    ("policy, template, serial", r"mayfly_authority::policy|mayfly_pki::serial|mayfly_pki::san|"
     r"mayfly_authority::x509"),
    ("logging (tracing)", r"tracing_subscriber|tracing_core|sharded_slab|tracing::span"),
    ("HTTP (hyper, axum, tower)", r"hyper::|hyper_util|axum|tower::|http::|httparse|mayfly_server"),
    ("tokio runtime", r"tokio::"),
    ("allocator", r"^(_?mi_|malloc|free|realloc|_int_|cfree)"),
    ("memory copies", r"memmove|memcpy|memset|memcmp"),
]
COMPILED = [(bucket, re.compile(rule)) for bucket, rule in RULES]


def classify(frames):
    for frame in frames:
        for bucket, rule in COMPILED:
            if rule.search(frame):
                if bucket == "crypto: ECDSA verification":
                    # The CSR's self-signature is checked through x509-parser; the token's not.
                    if any("verify_signature" in f or "Csr::" in f for f in frames):
                        return "crypto: CSR signature check"
                    return "crypto: token signature check"
                return bucket
    return "other"


def samples(path):
    header, frames = None, []
    with open(path, errors="replace") as lines:
        for line in lines:
            if not line.strip():
                if header:
                    yield frames
                header, frames = None, []
            elif not line[0].isspace():
                header, frames = line, []
            else:
                parts = line.split(None, 1)
                frames.append(parts[1].strip() if len(parts) > 1 else "")
    if header:
        yield frames


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    per_cert = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
    counts = Counter(classify(frames) for frames in samples(sys.argv[1]))
    total = sum(counts.values())
    if total == 0:
        sys.exit(f"{sys.argv[1]}: no samples")
    print("| stage | share | µs a certificate |")
    print("|---|---:|---:|")
    for bucket, n in counts.most_common():
        print(f"| {bucket} | {100 * n / total:.1f} % | {per_cert * n / total:.1f} |")
    print(f"\n{total} samples")


if __name__ == "__main__":
    main()

//! Certificates and KRLs written by `mayfly_pki::ssh`, read back by OpenSSH's `ssh-keygen`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use mayfly_pki::ssh::{
    CertType, SshCertTemplate, SshCertificate, SshPublicKey, build_krl, sign_certificate,
};
use mayfly_pki::{KeyAlgorithm, PrivateKey};

fn ssh_keygen_available() -> bool {
    let found = Command::new("ssh-keygen").arg("-?").output().is_ok();
    if !found {
        eprintln!("skipping: ssh-keygen is not installed (apt-get install openssh-client)");
    }
    found
}

fn keygen(args: &[&str]) -> std::process::Output {
    Command::new("ssh-keygen").args(args).output().unwrap()
}

/// A key made by ssh-keygen itself, read as the `.pub` line it writes.
fn openssh_key(dir: &Path, kind: &str, bits: &str) -> SshPublicKey {
    let path = dir.join(format!("id_{kind}_{bits}"));
    let out = keygen(&[
        "-q",
        "-t",
        kind,
        "-b",
        bits,
        "-N",
        "",
        "-C",
        "me@example",
        "-f",
        path.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    let line = std::fs::read_to_string(path.with_extension("pub")).unwrap();
    SshPublicKey::parse_line(&line).unwrap()
}

fn user_template(serial: u64) -> SshCertTemplate {
    SshCertTemplate {
        cert_type: CertType::User,
        serial,
        key_id: "alice@example.com".into(),
        principals: vec!["alice".into(), "ops".into()],
        valid_after: 1_893_456_000,  // 2030-01-01T00:00:00Z
        valid_before: 1_893_513_600, // 2030-01-01T16:00:00Z
        critical_options: BTreeMap::from([("source-address".into(), "127.0.0.1/32".into())]),
        extensions: [
            "permit-X11-forwarding",
            "permit-agent-forwarding",
            "permit-port-forwarding",
            "permit-pty",
            "permit-user-rc",
        ]
        .into_iter()
        .map(|e| (e.to_string(), String::new()))
        .collect(),
    }
}

fn listing(dir: &Path, cert: &SshCertificate, name: &str) -> String {
    let path = dir.join(format!("{name}-cert.pub"));
    std::fs::write(&path, format!("{}\n", cert.to_line())).unwrap();
    let out = Command::new("ssh-keygen")
        .env("TZ", "UTC")
        .args(["-L", "-f", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ssh-keygen -L refused {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn ssh_keygen_reads_user_and_host_certificates_of_every_key_type() {
    if !ssh_keygen_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let subjects = [
        (
            "ed25519",
            openssh_key(dir.path(), "ed25519", "256"),
            "ED25519-CERT",
        ),
        (
            "ecdsa256",
            openssh_key(dir.path(), "ecdsa", "256"),
            "ECDSA-CERT",
        ),
        (
            "ecdsa384",
            openssh_key(dir.path(), "ecdsa", "384"),
            "ECDSA-CERT",
        ),
        (
            "ecdsa521",
            openssh_key(dir.path(), "ecdsa", "521"),
            "ECDSA-CERT",
        ),
        ("rsa", openssh_key(dir.path(), "rsa", "2048"), "RSA-CERT"),
    ];
    for ca_algorithm in [KeyAlgorithm::EcP256, KeyAlgorithm::Ed25519] {
        let ca = PrivateKey::generate(ca_algorithm).unwrap();
        let ca_public = SshPublicKey::from_private_key(&ca).unwrap();
        for (name, subject, label) in &subjects {
            let cert = sign_certificate(&user_template(77), subject, &ca).unwrap();
            let text = listing(dir.path(), &cert, name);
            let kind = subject.algorithm().certificate_type();
            assert!(
                text.contains(&format!("Type: {kind} user certificate")),
                "{text}"
            );
            assert!(
                text.contains(&format!("Public key: {label} {}", subject.fingerprint())),
                "{text}"
            );
            assert!(text.contains(&ca_public.fingerprint()), "{text}");
            assert!(text.contains("Key ID: \"alice@example.com\""), "{text}");
            assert!(text.contains("Serial: 77"), "{text}");
            assert!(
                text.contains("Valid: from 2030-01-01T00:00:00 to 2030-01-01T16:00:00"),
                "{text}"
            );
            assert!(
                text.contains("                alice\n                ops\n"),
                "{text}"
            );
            assert!(text.contains("source-address 127.0.0.1/32"), "{text}");
            for extension in ["permit-pty", "permit-X11-forwarding", "permit-user-rc"] {
                assert!(text.contains(extension), "{text}");
            }
        }
        let mut host = user_template(78);
        host.cert_type = CertType::Host;
        host.key_id = "web1".into();
        host.principals = vec!["web1.internal".into(), "127.0.0.1".into()];
        host.critical_options.clear();
        host.extensions.clear();
        let cert = sign_certificate(&host, &subjects[1].1, &ca).unwrap();
        let text = listing(dir.path(), &cert, "host");
        assert!(text.contains("host certificate"), "{text}");
        assert!(text.contains("web1.internal"), "{text}");
        assert!(text.contains("Critical Options: (none)"), "{text}");
        assert!(text.contains("Extensions: (none)"), "{text}");
    }
}

#[test]
fn ssh_keygen_finds_revoked_serials_in_our_krl() {
    if !ssh_keygen_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ca = PrivateKey::generate(KeyAlgorithm::EcP256).unwrap();
    let ca_public = SshPublicKey::from_private_key(&ca).unwrap();
    let subject = openssh_key(dir.path(), "ed25519", "256");
    let revoked = sign_certificate(&user_template(1001), &subject, &ca).unwrap();
    let kept = sign_certificate(&user_template(1002), &subject, &ca).unwrap();
    let krl = build_krl(
        3,
        1_800_000_000,
        "mayfly test",
        &[(&ca_public, vec![1001, 5])],
    );
    let krl_path = dir.path().join("krl");
    std::fs::write(&krl_path, krl).unwrap();
    for (name, cert, expect_revoked) in [("revoked", &revoked, true), ("kept", &kept, false)] {
        let path = dir.path().join(format!("{name}-cert.pub"));
        std::fs::write(&path, format!("{}\n", cert.to_line())).unwrap();
        let out = keygen(&[
            "-Q",
            "-f",
            krl_path.to_str().unwrap(),
            path.to_str().unwrap(),
        ]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(!out.status.success(), expect_revoked, "{name}: {out:?}");
        assert_eq!(text.contains("REVOKED"), expect_revoked, "{name}: {text}");
    }
}

#[test]
fn bad_public_keys_are_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let good = if ssh_keygen_available() {
        openssh_key(dir.path(), "ecdsa", "256").to_line()
    } else {
        let key = PrivateKey::generate(KeyAlgorithm::EcP256).unwrap();
        SshPublicKey::from_private_key(&key).unwrap().to_line()
    };
    let data = good.split_whitespace().nth(1).unwrap().to_string();
    let cases: Vec<(String, &str)> = vec![
        (String::new(), "empty"),
        ("ssh-ed25519".into(), "no base64"),
        ("ssh-ed25519 !!!".into(), "not base64"),
        (format!("ssh-ed25519 {data}"), "the line says"),
        ("ssh-dss AAAAB3NzaC1kc3M=".into(), "expected ssh-ed25519"),
        (
            format!("ecdsa-sha2-nistp256 {}", &data[..data.len() - 8]),
            "SSH public key",
        ),
        (
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAAQA=".into(),
            "32 bytes",
        ),
    ];
    for (line, expected) in cases {
        let err = SshPublicKey::parse_line(&line).unwrap_err().to_string();
        assert!(err.contains(expected), "{line:?}: {err}");
    }
}

#[test]
fn openssh_private_key_files_are_read_and_written_as_ssh_keygen_does() {
    use mayfly_pki::ssh::keyfile::{decode_openssh_private_key, encode_openssh_private_key};
    if !ssh_keygen_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (kind, bits) in [("ed25519", "256"), ("ecdsa", "256"), ("ecdsa", "384")] {
        // ssh-keygen's files, read by us.
        let public = openssh_key(dir.path(), kind, bits);
        let path = dir.path().join(format!("id_{kind}_{bits}"));
        let key = decode_openssh_private_key(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(
            SshPublicKey::from_private_key(&key).unwrap(),
            public,
            "{kind}"
        );
        // Ours, read by ssh-keygen.
        let ours = dir.path().join(format!("ours_{kind}_{bits}"));
        std::fs::write(&ours, encode_openssh_private_key(&key, "me").unwrap()).unwrap();
        let mut permissions = std::fs::metadata(&ours).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o600);
        std::fs::set_permissions(&ours, permissions).unwrap();
        let out = keygen(&["-y", "-f", ours.to_str().unwrap()]);
        assert!(out.status.success(), "{kind}: {out:?}");
        assert_eq!(
            SshPublicKey::parse_line(&String::from_utf8_lossy(&out.stdout)).unwrap(),
            public
        );
    }
    // A passphrase-protected file is refused with the way out.
    let path = dir.path().join("locked");
    let out = keygen(&[
        "-q",
        "-t",
        "ed25519",
        "-N",
        "secret",
        "-f",
        path.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let err = decode_openssh_private_key(&std::fs::read(&path).unwrap())
        .unwrap_err()
        .to_string();
    assert!(err.contains("ssh-keygen -p"), "{err}");
}

/// Every truncation and many single-byte corruptions of a valid certificate, key, and OpenSSH
/// key file are refused with an error, never a panic, and no corrupted certificate verifies.
#[test]
fn damaged_ssh_input_is_an_error_never_a_panic() {
    use mayfly_pki::ssh::keyfile::{decode_openssh_private_key, encode_openssh_private_key};
    let ca = PrivateKey::generate(KeyAlgorithm::EcP256).unwrap();
    let subject_key = PrivateKey::generate(KeyAlgorithm::Ed25519).unwrap();
    let subject = SshPublicKey::from_private_key(&subject_key).unwrap();
    let cert = sign_certificate(&user_template(9), &subject, &ca).unwrap();
    let blob = cert.blob().to_vec();
    for len in 0..blob.len() {
        assert!(
            SshCertificate::from_blob(&blob[..len]).is_err(),
            "truncated at {len}"
        );
    }
    for at in 0..blob.len() {
        for flip in [0x01u8, 0x80, 0xff] {
            let mut damaged = blob.clone();
            damaged[at] ^= flip;
            // Either refused, or (a flip inside the nonce's or signature's slack) still the
            // same statement under a valid signature; never a different one accepted.
            if let Ok(parsed) = SshCertificate::from_blob(&damaged) {
                assert_eq!(parsed.template, cert.template, "byte {at} ^ {flip:#x}");
            }
        }
    }
    let key_blob = subject.blob().to_vec();
    for len in 0..key_blob.len() {
        assert!(SshPublicKey::from_blob(&key_blob[..len]).is_err());
    }
    let file = encode_openssh_private_key(&subject_key, "x").unwrap();
    let lines: Vec<&str> = file.lines().collect();
    for cut in 1..lines.len() {
        let damaged = format!("{}\n{}\n", lines[..cut].join("\n"), lines[lines.len() - 1]);
        let _ = decode_openssh_private_key(damaged.as_bytes());
    }
}

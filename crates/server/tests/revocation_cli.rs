//! `mayfly ca rekey` and `mayfly ca revoke --offline` against a running CA.

mod support;

use support::ca::DevCa;
use support::{mayfly_err, mayfly_ok, mode, openssl, require_tool, serial_of, verify_chain};

#[test]
fn rekey_and_offline_revocation() {
    require_tool("openssl", "openssl");
    let ca = DevCa::bootstrapped();
    let (client, work, dev) = (ca.client.clone(), ca.work(), &ca.dev);
    ca.certificate(["svc.internal", "svc.crt", "svc.key"], &[]);
    let old_key = std::fs::read(work.join("svc.key")).unwrap();
    let old_serial = serial_of(&client, work, "svc.crt");

    mayfly_err(
        &client,
        work,
        &["ca", "rekey", "svc.crt", "svc.key"],
        "use --force",
    );
    mayfly_ok(
        &client,
        work,
        &[
            "ca",
            "rekey",
            "svc.crt",
            "svc.key",
            "--out-cert",
            "new.crt",
            "--out-key",
            "new.key",
            "--kty",
            "OKP",
        ],
    );
    assert_eq!(mode(&work.join("new.key")), 0o600);
    assert_ne!(std::fs::read(work.join("new.key")).unwrap(), old_key);
    let cert_key = openssl(&["x509", "-in", "new.crt", "-noout", "-pubkey"], work);
    let new_key = openssl(&["pkey", "-in", "new.key", "-pubout"], work);
    assert_eq!(cert_key, new_key, "the new certificate is for the new key");
    let names = openssl(
        &[
            "x509",
            "-in",
            "new.crt",
            "-noout",
            "-subject",
            "-ext",
            "subjectAltName",
        ],
        work,
    );
    assert!(
        names.contains("CN = svc.internal") && names.contains("DNS:svc.internal"),
        "{names}"
    );
    let root = client.join("certs/root_ca.crt");
    verify_chain(&root, "new.crt", work);
    assert_ne!(serial_of(&client, work, "new.crt"), old_serial);

    // Offline revocation writes to the store the running CA uses, and takes effect at once.
    let new_serial = serial_of(&client, work, "new.crt");
    let config = dev.ca_dir.join("config/ca.json");
    let out = mayfly_ok(
        &client,
        work,
        &[
            "ca",
            "revoke",
            &new_serial,
            "--offline",
            "--ca-config",
            config.to_str().unwrap(),
            "--reasonCode",
            "superseded",
        ],
    );
    assert!(out.contains("has been revoked"), "{out}");
    mayfly_err(
        &client,
        work,
        &["ca", "renew", "new.crt", "new.key", "--force"],
        "was revoked",
    );
    mayfly_err(
        &client,
        work,
        &[
            "ca",
            "revoke",
            &new_serial,
            "--offline",
            "--ca-config",
            config.to_str().unwrap(),
        ],
        "already revoked",
    );
    mayfly_err(
        &client,
        work,
        &[
            "ca",
            "revoke",
            "77",
            "--offline",
            "--ca-config",
            config.to_str().unwrap(),
        ],
        "no certificate with serial number 77",
    );
    // The old certificate is still valid and renewable: rekeying does not revoke it.
    mayfly_ok(
        &client,
        work,
        &["ca", "renew", "svc.crt", "svc.key", "--force"],
    );
}

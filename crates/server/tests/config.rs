//! ca.json: step-ca's configuration runs unchanged, a broken one is one line naming the file
//! and field, and SIGHUP reloads it (keeping the old one when the new one is broken).

mod support;

use std::path::Path;

use support::ca::{Init, InitCa};
use support::{
    Server, ca_certificate, create_csr, mayfly_err, mayfly_ok, openssl, require_tool, run,
    verify_chain,
};

#[test]
fn a_step_ca_configuration_runs_unchanged() {
    require_tool("openssl", "openssl");
    let Some(vectors) = mayfly_testkit::interop_vectors("a_step_ca_configuration_runs_unchanged")
    else {
        return;
    };
    let vectors = vectors.join("certificates/ca");
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("mayfly");
    // step's tests run in the ca/ package directory, where the config's relative paths resolve.
    // The files are copied unchanged, then made private: mayfly-ca refuses a ca.json or a key
    // that every user can read, as the vectors' copies are.
    let ca_dir = tmp.path().join("ca");
    copy_private(&vectors.join("testdata"), &ca_dir.join("testdata"));
    let server = Server::start(&["testdata/ca.json"], &home, Some(&ca_dir), "serving on");
    let url = server
        .lines
        .iter()
        .find_map(|l| l.split("serving on ").nth(1))
        .unwrap()
        .trim()
        .to_string();
    let root = vectors.join("testdata/secrets/root_ca.crt");
    let fingerprint = openssl(
        &[
            "x509",
            "-in",
            root.to_str().unwrap(),
            "-noout",
            "-fingerprint",
            "-sha256",
        ],
        tmp.path(),
    );
    let fingerprint = fingerprint
        .trim()
        .rsplit('=')
        .next()
        .unwrap()
        .replace(':', "")
        .to_lowercase();
    let work = tmp.path();
    mayfly_ok(
        &home,
        work,
        &[
            "ca",
            "bootstrap",
            "--ca-url",
            &url,
            "--fingerprint",
            &fingerprint,
        ],
    );
    let provisioners = mayfly_ok(&home, work, &["ca", "provisioner", "list"]);
    for name in ["max", "mike", "step-cli", "mariano", "maxey"] {
        assert!(
            provisioners.contains(&format!("\"{name}\"")),
            "{name}: {provisioners}"
        );
    }
    support::write_secret(work.join("pass.txt"), "pass");
    ca_certificate(
        &home,
        work,
        "pass.txt",
        ["127.0.0.1", "step.crt", "step.key"],
        &["--provisioner", "step-cli"],
    );
    verify_chain(&root, "step.crt", work);
    let text = openssl(&["x509", "-in", "step.crt", "-noout", "-issuer"], work);
    assert!(text.contains("Smallstep Test Intermediate CA"), "{text}");
    drop(server);
}

/// Copies the directory `from` to `to`, every file readable by its owner only.
fn copy_private(from: &Path, to: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_private(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
    }
}

#[test]
fn bad_configuration_is_one_line_naming_the_file_and_field() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let cases = [
        ("{\"root\": ", "line 1"),
        (
            "{\"root\":\"r\",\"crt\":\"c\",\"key\":\"k\",\"address\":\":0\",\"dnsNames\":[]}",
            "missing field `authority`",
        ),
        (
            "{\"root\":\"missing-root.crt\",\"crt\":\"c\",\"key\":\"k\",\"address\":\":0\",\"dnsNames\":[],\"authority\":{}}",
            "root: cannot read",
        ),
        (
            "{\"root\":\"r\",\"crt\":\"c\",\"key\":\"k\",\"address\":\":0\",\"dnsNames\":[],\"authority\":{\"claims\":{\"maxTLSCertDuration\":\"30\"}}}",
            "\"30\" is not a duration",
        ),
    ];
    for (text, expected) in cases {
        let path = tmp.path().join("ca.json");
        support::write_secret(&path, text);
        let out = std::process::Command::new(support::server_bin())
            .arg(&path)
            .env("MAYFLY_PATH", &home)
            .env("MAYFLY_LOG", "off")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{text}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(path.to_str().unwrap()), "{stderr}");
        assert!(
            stderr.contains(expected),
            "{stderr:?} should contain {expected:?}"
        );
    }
    let missing = std::process::Command::new(support::server_bin())
        .arg(tmp.path().join("nope.json"))
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot read"));
    let dev_twice = tmp.path().join("dev");
    let (server, _) = Server::dev(&dev_twice, &home);
    let again = std::process::Command::new(support::server_bin())
        .args([
            "dev",
            "--dir",
            dev_twice.join("ca").to_str().unwrap(),
            "--address",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds a CA"));
    drop(server);
}

#[test]
fn sighup_reloads_ca_json_and_keeps_the_old_one_when_the_new_one_is_broken() {
    let ca = InitCa::new(Init {
        name: "Reload",
        provisioner: "admin",
        ..Init::default()
    });
    let (home, work, config) = (ca.home.clone(), ca.work(), &ca.config);
    support::write_secret(work.join("pw2.txt"), "deploy password\n");
    let server = ca.start();
    let hup = || {
        let (ok, text) = run("kill", &["-HUP", &server.pid().to_string()], work);
        assert!(ok, "{text}");
    };
    let listed = |name: &str| {
        mayfly_ok(&home, work, &["ca", "provisioner", "list"]).contains(&format!("\"{name}\""))
    };
    let eventually = |what: &str, check: &dyn Fn() -> bool| {
        for _ in 0..50 {
            if check() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("{what} did not happen");
    };
    create_csr(
        &client_csr_dir(work),
        work,
        ["svc.internal", "svc.csr", "svc.key"],
        &[],
    );

    // A provisioner added to ca.json works after SIGHUP, without a restart.
    mayfly_ok(
        &home,
        work,
        &[
            "ca",
            "provisioner",
            "add",
            "deploy",
            "--create",
            "--password-file",
            "pw2.txt",
        ],
    );
    assert!(!listed("deploy"));
    hup();
    eventually("the new provisioner appearing", &|| listed("deploy"));
    let token = mayfly_ok(
        &home,
        work,
        &[
            "ca",
            "token",
            "svc.internal",
            "--provisioner",
            "deploy",
            "--password-file",
            "pw2.txt",
        ],
    );
    mayfly_ok(
        &home,
        work,
        &["ca", "sign", "svc.csr", "a.crt", "--token", token.trim()],
    );

    // Removed and reloaded: its tokens are refused.
    let early = mayfly_ok(
        &home,
        work,
        &[
            "ca",
            "token",
            "svc.internal",
            "--provisioner",
            "deploy",
            "--password-file",
            "pw2.txt",
        ],
    );
    mayfly_ok(&home, work, &["ca", "provisioner", "remove", "deploy"]);
    hup();
    eventually("the provisioner going away", &|| !listed("deploy"));
    mayfly_err(
        &home,
        work,
        &["ca", "sign", "svc.csr", "b.crt", "--token", early.trim()],
        "no provisioner's key",
    );

    // A broken ca.json is refused on reload; the CA goes on with the configuration in force.
    let good = std::fs::read(config).unwrap();
    std::fs::write(config, "{ not json").unwrap();
    hup();
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(mayfly_ok(&home, work, &["ca", "health"]).trim(), "ok");
    let token = mayfly_ok(
        &home,
        work,
        &[
            "ca",
            "token",
            "svc.internal",
            "--provisioner",
            "admin",
            "--password-file",
            "pw.txt",
        ],
    );
    mayfly_ok(
        &home,
        work,
        &["ca", "sign", "svc.csr", "c.crt", "--token", token.trim()],
    );
    std::fs::write(config, good).unwrap();
}

fn client_csr_dir(work: &Path) -> std::path::PathBuf {
    work.join("csr-home")
}

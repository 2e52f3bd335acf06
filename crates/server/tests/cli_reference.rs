//! Every command has `--help`, and docs/cli.md is that help, generated.

mod support;

use std::path::Path;

use support::mayfly_ok;

#[test]
fn every_command_has_help() {
    let tmp = tempfile::tempdir().unwrap();
    let commands: &[&[&str]] = &[
        &[],
        &["ca"],
        &["ca", "init"],
        &["ca", "bootstrap"],
        &["ca", "root"],
        &["ca", "roots"],
        &["ca", "health"],
        &["ca", "provisioner"],
        &["ca", "provisioner", "list"],
        &["ca", "token"],
        &["ca", "certificate"],
        &["ca", "sign"],
        &["ca", "renew"],
        &["ca", "revoke"],
        &["ca", "rekey"],
        &["ca", "crl"],
        &["ca", "certificates", "list"],
        &["ca", "certificates", "export"],
        &["ca", "audit"],
        &["certificate"],
        &["certificate", "create"],
        &["certificate", "inspect"],
        &["certificate", "fingerprint"],
        &["certificate", "verify"],
        &["crypto"],
        &["crypto", "jwt"],
        &["crypto", "change-pass"],
        &["crypto", "shamir"],
        &["path"],
    ];
    for command in commands {
        let mut args = command.to_vec();
        args.push("--help");
        let out = mayfly_ok(tmp.path(), tmp.path(), &args);
        assert!(out.contains("Usage: mayfly"), "{command:?}: {out}");
    }
    for args in [
        &["--help"][..],
        &["dev", "--help"][..],
        &["db", "--help"][..],
        &["db", "migrate", "--help"][..],
        &["db", "check", "--help"][..],
    ] {
        let out = std::process::Command::new(support::server_bin())
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success());
        assert!(String::from_utf8_lossy(&out.stdout).contains("Usage: mayfly-ca"));
    }
}

/// docs/cli.md is generated from the binaries' own `--help`, so it cannot drift from them, and
/// it covers every command: they are found through `--help` itself, recursively.
/// `MAYFLY_BLESS=1 cargo test -p mayfly-server --test cli_reference` rewrites it.
#[test]
fn cli_reference_in_docs_matches_help() {
    let mut doc = String::from(
        "# Command reference\n\nGenerated from `--help` by the test `cli_reference_in_docs_matches_help`\n\
         (`MAYFLY_BLESS=1 cargo test -p mayfly-server --test cli_reference` rewrites it).\n\
         Passwords are only read from files or a terminal, never from flag values.\n",
    );
    for (name, program) in [
        ("mayfly-ca", support::server_bin()),
        ("mayfly", support::client_bin()),
    ] {
        for path in support::command_paths(&program) {
            let args: Vec<&str> = path.iter().map(String::as_str).collect();
            let title = std::iter::once(name)
                .chain(args.iter().copied())
                .collect::<Vec<_>>()
                .join(" ");
            doc.push_str(&format!(
                "\n## {title}\n\n```text\n{}```\n",
                support::help(&program, &args)
            ));
        }
    }
    let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/cli.md"));
    if std::env::var_os("MAYFLY_BLESS").is_some() {
        std::fs::write(path, &doc).unwrap();
    }
    let current = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        current == doc,
        "docs/cli.md is out of date: run MAYFLY_BLESS=1 cargo test -p mayfly-server --test cli_reference"
    );
}

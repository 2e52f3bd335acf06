//! The user documentation as a new user meets it: the README's walkthrough runs as written, top
//! to bottom, and the documents speak only of the project.

mod support;

use std::path::Path;
use std::process::Command;

/// The README's walkthrough: its `sh` blocks, one logical line per command (continuation lines
/// joined), comment-only lines dropped.
fn walkthrough_commands(readme: &str) -> Vec<String> {
    let section = readme
        .split("\n## Walkthrough\n")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("README.md has a Walkthrough section");
    let mut commands = Vec::new();
    let mut in_block = false;
    let mut pending = String::new();
    for line in section.lines() {
        if line.starts_with("```") {
            in_block = line == "```sh";
            continue;
        }
        if !in_block {
            continue;
        }
        let line = line.trim_end();
        if let Some(start) = line.strip_suffix('\\') {
            pending.push_str(start);
            continue;
        }
        pending.push_str(line);
        let command = std::mem::take(&mut pending);
        if !command.trim().is_empty() && !command.trim_start().starts_with('#') {
            commands.push(command.trim().to_string());
        }
    }
    commands
}

/// A quoted word for bash.
fn quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// The walkthrough as a bash script: every command as the README has it, except that the two
/// servers run in the background (the README gives each a terminal of its own), `cargo build`
/// is left to the test harness, the fixed ports become free ones, and the values the README
/// says the dev CA prints are taken from what it printed.
fn script(commands: &[String], bin_dir: &Path, port: u16, metrics_port: u16) -> String {
    let mut script = String::from(
        "set -eo pipefail\n\
         trap 'kill $DEV_PID $CA_PID 2>/dev/null || true' EXIT\n\
         wait_for() { for _ in $(seq 600); do grep -q \"$2\" \"$1\" 2>/dev/null && return 0; sleep 0.1; done; \
         echo \"timed out waiting for $2 in $1:\"; cat \"$1\"; return 1; }\n\
         wait_closed() { for _ in $(seq 600); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null || return 0; sleep 0.1; done; \
         echo \"port $1 is still open:\"; ss -ltnp 2>&1; return 1; }\n",
    );
    let bin = bin_dir.display().to_string();
    for command in commands {
        let line = command
            .replace("$PWD/target/release", &bin)
            .replace("./target/release/", &format!("{bin}/"))
            .replace("9000", &port.to_string())
            .replace("9090", &metrics_port.to_string())
            .replace("<root fingerprint>", "\"$FINGERPRINT\"")
            .replace("<password file>", "\"$DEV_PASSWORD_FILE\"");
        script.push_str(&format!("echo {}\n", quoted(&format!("+ {command}"))));
        if command == "cargo build --release" {
            continue;
        }
        if command.ends_with("mayfly-ca dev") {
            script.push_str(&format!(
                "{line} --address 127.0.0.1:{port} >dev.out 2>dev.err &\nDEV_PID=$!\n\
                 wait_for dev.out 'Press Ctrl-C'\n\
                 FINGERPRINT=$(awk '/Root fingerprint:/ {{print $3}}' dev.out)\n\
                 DEV_PASSWORD_FILE=$(sed -n 's/.*(password file: \\(.*\\))$/\\1/p' dev.out)\n"
            ));
            continue;
        }
        if command.starts_with("mayfly-ca \"$MAYFLY_PATH/config/ca.json\"") {
            // The README stops the dev CA first (Ctrl-C).
            script.push_str(&format!(
                "kill $DEV_PID; wait $DEV_PID || true; wait_closed {port}\n\
                 {line} >ca.out 2>ca.err &\nCA_PID=$!\n\
                 wait_for ca.out 'serving metrics on'\n"
            ));
            continue;
        }
        script.push_str(&line);
        script.push('\n');
    }
    script
}

#[test]
fn readme_walkthrough_runs_as_written() {
    let test = "readme_walkthrough_runs_as_written";
    for (program, package) in [
        ("openssl", "openssl"),
        ("curl", "curl"),
        ("ssh-keygen", "openssh-client"),
    ] {
        if mayfly_testkit::program(test, program, package).is_none() {
            return;
        }
    }
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let commands = walkthrough_commands(&readme);
    assert!(commands.len() > 30, "{commands:#?}");
    let bin_dir = support::client_bin().parent().unwrap().to_path_buf();
    // The dev CA's port is given up and taken again by the second CA, as in the README: outside
    // the ephemeral range, so no connection of another process takes it in between.
    let port = support::free_port_outside_ephemeral();
    // `ca init` puts the plain-HTTP listener on the next port: leave it to it.
    let metrics_port = std::iter::repeat_with(support::free_port_outside_ephemeral)
        .find(|p| *p != port + 1)
        .unwrap();
    let script = script(&commands, &bin_dir, port, metrics_port);

    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("user");
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(tmp.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", &home)
        .env("TMPDIR", tmp.path())
        .env("MAYFLY_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let logs = ["dev.err", "ca.err"]
        .iter()
        .map(|f| std::fs::read_to_string(tmp.path().join(f)).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        out.status.success(),
        "the walkthrough stopped ({:?}):\n{stdout}\n{stderr}\nserver logs:\n{logs}",
        out.status
    );
    // What the README says the commands show.
    assert!(stdout.contains("svc.crt: OK"), "{stdout}");
    assert!(stdout.contains("mayfly_certificates_total"), "{stdout}");
    assert!(
        stdout.contains("web.internal"),
        "the audit log names the certificate:\n{stdout}"
    );
    let known_hosts = std::fs::read_to_string(home.join(".ssh/known_hosts")).unwrap();
    assert!(
        known_hosts.starts_with("@cert-authority * "),
        "{known_hosts}"
    );
    assert!(tmp.path().join("man1/mayfly-ca-init.1").exists());
    assert!(tmp.path().join("man8/mayfly-ca.8").exists());
}

/// README.md and docs/ speak of the project itself: none of the words of its making.
#[test]
fn user_documents_speak_only_of_the_project() {
    let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    let mut files = vec![root.join("README.md")];
    let mut dirs = vec![root.join("docs"), root.join("contrib")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
    }
    for file in files {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        for (number, line) in (1..).zip(text.lines()) {
            if let Some(word) = internal_word(line) {
                panic!("{}:{number}: {word:?} in {line:?}", file.display());
            }
        }
    }
}

/// The internal word in `line`, if any: "seed" followed by a number, the design notes' name,
/// the peers' directory outside the checkout's own words.
fn internal_word(line: &str) -> Option<String> {
    let lower = line.to_ascii_lowercase();
    for word in ["design.md", "seeds/", "/work/"] {
        if lower.contains(word) {
            return Some(word.to_string());
        }
    }
    let mut rest = lower.as_str();
    while let Some(at) = rest.find("seed") {
        let after = rest[at + 4..].trim_start_matches([' ', '-', '#']);
        if after.starts_with(|c: char| c.is_ascii_digit()) {
            return Some(rest[at..].chars().take(12).collect());
        }
        rest = &rest[at + 4..];
    }
    None
}

/// docs/architecture.md names every crate of the workspace, and only crates that exist: the
/// map a newcomer reads first cannot drift from the tree.
#[test]
fn the_architecture_map_names_exactly_the_crates() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let map = std::fs::read_to_string(root.join("docs/architecture.md")).unwrap();
    let named: std::collections::BTreeSet<String> = map
        .lines()
        .filter_map(|line| line.strip_prefix("| `crates/"))
        .filter_map(|rest| rest.split('`').next())
        .map(str::to_owned)
        .collect();
    let present: std::collections::BTreeSet<String> = std::fs::read_dir(root.join("crates"))
        .unwrap()
        .filter_map(|entry| {
            let entry = entry.ok()?;
            entry
                .path()
                .join("Cargo.toml")
                .exists()
                .then(|| entry.file_name().to_string_lossy().into_owned())
        })
        .collect();
    assert_eq!(named, present, "docs/architecture.md's crate table");
    for module in [
        "credential/",
        "policy/",
        "policy/names.rs",
        "policy/rules.rs",
        "issue.rs",
        "x509.rs",
        "revocation.rs",
    ] {
        assert!(
            root.join("crates/authority/src").join(module).exists(),
            "docs/architecture.md names crates/authority/src/{module}"
        );
    }
}

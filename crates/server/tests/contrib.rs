//! Checks the systemd units in `contrib/systemd/`.
//!
//! Three layers, so that a unit cannot silently rot:
//! - the units are parsed here (sections, `Key=Value`, continuation lines) and the keys that
//!   matter are asserted: the sandboxing of `mayfly-ca.service`, the renewal window and timer;
//! - every `mayfly`/`mayfly-ca` command line of a unit is run against the real binaries: its
//!   subcommand must exist, every flag must be in the subcommand's `--help`, and the whole argv
//!   must get past argument parsing;
//! - where `systemd-analyze` is installed (Debian package `systemd`), systemd itself verifies the
//!   units, and rates the sandbox of `mayfly-ca.service`.
//!
//! The shell snippets of `cert-renewer@.service` also run here, against a fake `systemctl`.

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The units shipped in contrib/systemd; a new unit must be added here and get its checks.
const UNITS: [&str; 4] = [
    "mayfly-ca.service",
    "cert-renewer@.service",
    "cert-renewer@.timer",
    "mayfly-renewer@.service",
];

/// Where the units expect the binaries; tests swap in the ones cargo built.
const INSTALLED_SERVER: &str = "/usr/local/bin/mayfly-ca";
const INSTALLED_CLIENT: &str = "/usr/local/bin/mayfly";

/// The instance name used to expand `%i` in template units.
const INSTANCE: &str = "web";

#[test]
fn every_unit_is_checked_and_documented() {
    let mut found: Vec<String> = fs::read_dir(contrib_dir())
        .expect("reading contrib/systemd")
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".service") || name.ends_with(".timer"))
        .collect();
    found.sort();
    let mut expected: Vec<String> = UNITS.iter().map(|u| u.to_string()).collect();
    expected.sort();
    assert_eq!(
        found, expected,
        "contrib/systemd holds units this test does not know: add them to UNITS and check them"
    );
    let readme = fs::read_to_string(contrib_dir().join("README.md")).expect("contrib README");
    let operations = fs::read_to_string(repo_root().join("docs/operations.md")).expect("ops doc");
    for unit in UNITS {
        assert!(readme.contains(unit), "contrib/systemd/README.md: {unit}");
        assert!(operations.contains(unit), "docs/operations.md: {unit}");
    }
}

#[test]
fn mayfly_ca_service_runs_the_ca_as_its_own_user_and_reloads_on_hup() {
    let unit = Unit::load("mayfly-ca.service");
    assert_eq!(
        unit.command("ExecStart", None),
        [
            INSTALLED_SERVER,
            "/etc/mayfly/config/ca.json",
            "--password-file",
            "/etc/mayfly/password.txt",
        ]
    );
    assert_eq!(unit.value("Service", "User"), "mayfly");
    assert_eq!(unit.value("Service", "Group"), "mayfly");
    assert_eq!(unit.environment(None)["MAYFLY_PATH"], "/etc/mayfly");
    assert_eq!(
        unit.command("ExecReload", None),
        ["/bin/kill", "-HUP", "$MAINPID"]
    );
    assert_eq!(unit.value("Service", "Restart"), "on-failure");
    assert_eq!(unit.value("Install", "WantedBy"), "multi-user.target");
    // A crash loop must end (the unit then shows as failed) instead of restarting for ever.
    assert!(
        unit.value("Unit", "StartLimitIntervalSec")
            .parse::<u32>()
            .unwrap()
            > 0
    );
    assert!(
        unit.value("Unit", "StartLimitBurst")
            .parse::<u32>()
            .unwrap()
            > 0
    );
}

#[test]
fn mayfly_ca_service_is_sandboxed() {
    let unit = Unit::load("mayfly-ca.service");
    for key in [
        "NoNewPrivileges",
        "ProtectHome",
        "PrivateTmp",
        "PrivateDevices",
        "ProtectKernelTunables",
        "ProtectKernelModules",
        "ProtectKernelLogs",
        "ProtectControlGroups",
        "ProtectClock",
        "RestrictNamespaces",
        "RestrictSUIDSGID",
        "RestrictRealtime",
        "LockPersonality",
        "MemoryDenyWriteExecute",
    ] {
        assert!(
            is_true(unit.value("Service", key)),
            "mayfly-ca.service: {key}= must be on"
        );
    }
    for (key, expected) in [
        ("CapabilityBoundingSet", "CAP_NET_BIND_SERVICE"),
        ("AmbientCapabilities", "CAP_NET_BIND_SERVICE"),
        ("SecureBits", "keep-caps"),
        ("SystemCallArchitectures", "native"),
        ("UMask", "0077"),
    ] {
        assert_eq!(
            unit.value("Service", key),
            expected,
            "mayfly-ca.service: {key}="
        );
    }
    assert_eq!(
        words(unit.value("Service", "RestrictAddressFamilies")),
        ["AF_INET", "AF_INET6", "AF_UNIX"]
    );
    assert!(
        unit.values("Service", "SystemCallFilter")
            .contains(&"@system-service"),
        "mayfly-ca.service: SystemCallFilter=@system-service"
    );
    let limit = unit.value("Service", "LimitNOFILE");
    assert!(
        limit.parse::<u32>().is_ok_and(|n| n >= 4096),
        "LimitNOFILE={limit}"
    );

    // The file system is read-only, except the store's directory (where ca.json puts the
    // database: `mayfly ca init` writes $MAYFLY_PATH/db/mayfly.db).
    let protect_system = unit.value("Service", "ProtectSystem");
    assert!(
        ["full", "strict"].contains(&protect_system),
        "ProtectSystem={protect_system}"
    );
    let writable = unit.values("Service", "ReadWritePaths");
    let store_dir = format!("{}/db", unit.environment(None)["MAYFLY_PATH"]);
    assert!(
        writable.contains(&store_dir.as_str()),
        "ReadWritePaths= must contain {store_dir}: {writable:?}"
    );
    assert!(
        unit.values("Unit", "AssertPathIsDirectory")
            .contains(&store_dir.as_str()),
        "a missing {store_dir} should be named when the start fails"
    );
    // Nothing the CA reads may be hidden by ProtectHome= or the private /tmp.
    for arg in unit.command("ExecStart", None) {
        for hidden in ["/home", "/root", "/run/user", "/tmp", "/var/tmp"] {
            assert!(!arg.starts_with(hidden), "{arg} is hidden by the sandbox");
        }
    }
}

#[test]
fn cert_renewer_service_renews_within_a_window_then_reloads_the_consumer() {
    let unit = Unit::load("cert-renewer@.service");
    assert_eq!(unit.value("Service", "Type"), "oneshot");
    assert_eq!(unit.value("Unit", "StartLimitIntervalSec"), "0");
    let env = unit.environment(Some(INSTANCE));
    assert_eq!(env["MAYFLY_PATH"], "/etc/mayfly");
    let argv = unit.command("ExecStart", Some(INSTANCE));
    assert_eq!(argv[..3], [INSTALLED_CLIENT, "ca", "renew"]);
    assert!(argv.contains(&"--force".to_string()), "{argv:?}");
    let window = flag_value(&argv, "--expires-in").expect("--expires-in");
    assert_eq!(window, "8h");
    assert_eq!(
        argv[argv.len() - 2..],
        ["/etc/mayfly/certs/web.crt", "/etc/mayfly/certs/web.key"]
    );
    let post = unit.command("ExecStartPost", Some(INSTANCE)).join(" ");
    assert!(
        post.contains("systemctl --quiet is-active web.service"),
        "{post}"
    );
    assert!(
        post.contains("systemctl try-reload-or-restart web.service"),
        "{post}"
    );
}

#[test]
fn cert_renewer_timer_runs_every_15_minutes_with_jitter() {
    let unit = Unit::load("cert-renewer@.timer");
    assert_eq!(unit.value("Timer", "OnCalendar"), "*:1/15");
    assert_eq!(unit.value("Timer", "AccuracySec"), "1us");
    assert_eq!(unit.value("Timer", "RandomizedDelaySec"), "5m");
    assert!(is_true(unit.value("Timer", "Persistent")));
    assert_eq!(unit.value("Install", "WantedBy"), "timers.target");
    // No Unit=: the timer starts the service of the same name, cert-renewer@NAME.service.
    assert!(unit.values("Timer", "Unit").is_empty());
}

#[test]
fn mayfly_renewer_service_runs_the_daemon_and_reloads_the_consumer() {
    let unit = Unit::load("mayfly-renewer@.service");
    assert_eq!(
        unit.environment(Some(INSTANCE))["MAYFLY_PATH"],
        "/etc/mayfly"
    );
    let argv = unit.command("ExecStart", Some(INSTANCE));
    assert_eq!(argv[..3], [INSTALLED_CLIENT, "ca", "renew"]);
    assert!(argv.contains(&"--daemon".to_string()), "{argv:?}");
    // One argument: the daemon splits it into an argv itself and runs it without a shell.
    assert_eq!(
        flag_value(&argv, "--exec"),
        Some("systemctl try-reload-or-restart web.service")
    );
    assert_eq!(
        argv[argv.len() - 2..],
        ["/etc/mayfly/certs/web.crt", "/etc/mayfly/certs/web.key"]
    );
    assert_eq!(unit.value("Service", "Restart"), "always");
    assert_eq!(unit.value("Unit", "StartLimitIntervalSec"), "0");
    // `systemctl reload` sends SIGHUP, which makes the daemon renew at once.
    assert_eq!(
        unit.command("ExecReload", Some(INSTANCE)),
        ["/bin/kill", "-HUP", "$MAINPID"]
    );
}

/// Runs ExecStartPre and ExecStartPost of cert-renewer@.service as systemd would (same argv,
/// same environment), with a fake `systemctl` that logs its arguments.
#[test]
fn cert_renewer_reloads_only_a_running_service_and_only_after_a_renewal() {
    let unit = Unit::load("cert-renewer@.service");
    let pre = unit.command("ExecStartPre", Some(INSTANCE));
    let post = unit.command("ExecStartPost", Some(INSTANCE));

    struct Case {
        renewed: bool,
        active: bool,
        reload_fails: bool,
        reloads: bool,
        succeeds: bool,
    }
    let cases = [
        // `--expires-in`: not due, nothing renewed: the service is left alone.
        Case {
            renewed: false,
            active: true,
            reload_fails: false,
            reloads: false,
            succeeds: true,
        },
        Case {
            renewed: true,
            active: true,
            reload_fails: false,
            reloads: true,
            succeeds: true,
        },
        // Renewed, but the service is stopped (or does not exist): nothing to reload.
        Case {
            renewed: true,
            active: false,
            reload_fails: false,
            reloads: false,
            succeeds: true,
        },
        // A failed reload fails the unit, so that it shows in `systemctl --failed`.
        Case {
            renewed: true,
            active: true,
            reload_fails: true,
            reloads: true,
            succeeds: false,
        },
    ];
    for (n, case) in cases.iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let fake_bin = dir.path().join("bin");
        fs::create_dir(&fake_bin).unwrap();
        let log = dir.path().join("systemctl.log");
        let fake = format!(
            "#!/bin/sh\necho \"$*\" >> '{}'\n\
             case \"$*\" in *is-active*) exit {};; *try-reload-or-restart*) exit {};; esac\n",
            log.display(),
            if case.active { 0 } else { 3 },
            if case.reload_fails { 1 } else { 0 },
        );
        fs::write(fake_bin.join("systemctl"), fake).unwrap();
        fs::set_permissions(
            fake_bin.join("systemctl"),
            fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        let runtime = dir.path().join("run");
        fs::create_dir(&runtime).unwrap();
        let cert = dir.path().join("web.crt");
        fs::write(&cert, "old certificate\n").unwrap();

        let run = |argv: &[String]| {
            let mut env = unit.environment(Some(INSTANCE));
            env.insert("CERT_LOCATION".into(), cert.display().to_string());
            env.insert("RUNTIME_DIRECTORY".into(), runtime.display().to_string());
            env.insert(
                "PATH".into(),
                format!("{}:/usr/bin:/bin", fake_bin.display()),
            );
            Command::new(&argv[0])
                .args(&argv[1..])
                .env_clear()
                .envs(env)
                .stdin(Stdio::null())
                .output()
                .expect("running a unit's command")
        };
        let out = run(&pre);
        assert!(
            out.status.success(),
            "case {n}: ExecStartPre: {}",
            text(&out)
        );
        if case.renewed {
            fs::write(&cert, "new certificate\n").unwrap();
        }
        let out = run(&post);
        assert_eq!(
            out.status.success(),
            case.succeeds,
            "case {n}: ExecStartPost: {}",
            text(&out)
        );
        let calls = fs::read_to_string(&log).unwrap_or_default();
        assert_eq!(
            calls.contains("try-reload-or-restart web.service"),
            case.reloads,
            "case {n}: systemctl calls: {calls:?}"
        );
    }
}

/// Every `mayfly`/`mayfly-ca` command line in the units runs with the binaries cargo built: the
/// subcommand exists, each flag is documented in its `--help`, and the argv parses (the run then
/// fails on the missing files, which is not a usage error).
#[test]
fn unit_command_lines_parse_with_the_real_binaries() {
    let mut checked = 0;
    for name in UNITS {
        let unit = Unit::load(name);
        for key in ["ExecStartPre", "ExecStart", "ExecStartPost", "ExecReload"] {
            for index in 0..unit.values("Service", key).len() {
                let argv = unit.command_at(key, index, Some(INSTANCE));
                let bin = match argv[0].as_str() {
                    INSTALLED_SERVER => support::server_bin(),
                    INSTALLED_CLIENT => support::client_bin(),
                    other => {
                        assert!(
                            !other.contains("mayfly"),
                            "{name}: {key}: mayfly binaries are expected in /usr/local/bin"
                        );
                        continue;
                    }
                };
                check_command_line(name, key, &unit, &bin, &argv[1..]);
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 3, "one command line per unit but the timer");
}

/// `systemd-analyze verify` on copies of the units in which the binaries' paths point at the
/// ones cargo built. Why rewrite rather than tolerate: verify checks that every Exec*= binary
/// is executable, and /usr/local/bin/mayfly* are not installed on a build machine; pointing the
/// copies at the real binaries keeps that check meaningful (a typo in a path still fails) and
/// lets us demand a silent verify, since verify exits 0 even when it warns about an unknown key
/// or an unparsable value, which are exactly the mistakes worth catching.
#[test]
fn systemd_analyze_verify_accepts_every_unit() {
    if !on_path("systemd-analyze") {
        eprintln!(
            "SKIPPED systemd-analyze verify: systemd-analyze is not installed \
             (Debian package systemd); the units were still parsed and checked by the other tests"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for name in UNITS {
        let text = fs::read_to_string(contrib_dir().join(name)).unwrap();
        let text = text
            .replace(INSTALLED_SERVER, &unit_path(&support::server_bin()))
            .replace(INSTALLED_CLIENT, &unit_path(&support::client_bin()));
        let path = dir.path().join(name);
        fs::write(&path, text).unwrap();
        files.push(path);
    }
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(&files)
        .env("SYSTEMD_LOG_COLOR", "0")
        .stdin(Stdio::null())
        .output()
        .expect("running systemd-analyze");
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "systemd-analyze verify: {}",
        text(&out)
    );

    // The sandbox as systemd rates it (0 is best, 10 worst; a plain service scores about 9.6).
    // `--offline` needs systemd 250; an older one cannot rate a unit file and is skipped.
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--man=no", "--no-pager"])
        .arg(dir.path().join("mayfly-ca.service"))
        .env("SYSTEMD_LOG_COLOR", "0")
        .stdin(Stdio::null())
        .output()
        .expect("running systemd-analyze security");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let Some(score) = stdout
        .lines()
        .find_map(|l| l.split_once("Overall exposure level for mayfly-ca.service: "))
        .and_then(|(_, rest)| rest.split_whitespace().next()?.parse::<f64>().ok())
    else {
        eprintln!("SKIPPED systemd-analyze security --offline: {}", text(&out));
        return;
    };
    assert!(score <= 2.0, "mayfly-ca.service exposure {score}: {stdout}");
}

/// Runs `bin SUBCOMMAND --help` and then the unit's argv (with /etc/mayfly moved to a temp dir).
fn check_command_line(unit_name: &str, key: &str, unit: &Unit, bin: &Path, args: &[String]) {
    let what = format!("{unit_name}: {key}: {} {}", bin.display(), args.join(" "));
    let subcommand: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .take_while(|a| !a.starts_with('-') && !a.contains('/'))
        .collect();
    let help = Command::new(bin)
        .args(&subcommand)
        .arg("--help")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        help.status.success(),
        "{what}: `{} {}` does not exist: {}",
        bin.file_name().unwrap().to_string_lossy(),
        subcommand.join(" "),
        text(&help)
    );
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in args.iter().filter(|a| a.starts_with("--")) {
        let flag = flag.split('=').next().unwrap();
        assert!(
            help.split(|c: char| !(c.is_alphanumeric() || c == '-'))
                .any(|word| word == flag),
            "{what}: {flag} is not in `--help`:\n{help}"
        );
    }

    // The real argv, pointed away from /etc/mayfly: the files are missing, so the command fails,
    // but only after clap accepted every argument (a usage error prints "Usage:").
    let scratch = tempfile::tempdir().unwrap();
    let moved = |s: &str| s.replace("/etc/mayfly", &scratch.path().display().to_string());
    let mut command = Command::new(bin);
    command
        .args(args.iter().map(|a| moved(a)))
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in unit.environment(Some(INSTANCE)) {
        command.env(name, moved(&value));
    }
    let mut child = command.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            // Still running: it got past argument parsing (a daemon waiting for its files).
            child.kill().unwrap();
            child.wait().unwrap();
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("Usage:") && !stderr.starts_with("error:"),
        "{what}: the arguments do not parse: {stderr}"
    );
}

/// A unit file: its `[Section]` `Key=Value` entries in order, continuation lines joined.
struct Unit {
    name: String,
    entries: Vec<(String, String, String)>,
}

impl Unit {
    fn load(name: &str) -> Unit {
        let path = contrib_dir().join(name);
        let text =
            fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        Unit::parse(name, &text)
    }

    fn parse(name: &str, text: &str) -> Unit {
        let mut entries = Vec::new();
        let mut section: Option<String> = None;
        let mut pending = String::new();
        for (number, line) in text.lines().enumerate() {
            let where_ = format!("{name}:{}", number + 1);
            if pending.is_empty() {
                let trimmed = line.trim();
                if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
                    continue;
                }
                if let Some(header) = trimmed.strip_prefix('[') {
                    let header = header
                        .strip_suffix(']')
                        .unwrap_or_else(|| panic!("{where_}: bad section header {line:?}"));
                    section = Some(header.to_string());
                    continue;
                }
            } else if line.trim_start().starts_with('#') || line.trim_start().starts_with(';') {
                // systemd skips comment lines inside a continued value.
                continue;
            }
            // A trailing backslash continues the value on the next line (joined with a space).
            match line.strip_suffix('\\') {
                Some(head) => {
                    pending.push_str(head);
                    pending.push(' ');
                    continue;
                }
                None => pending.push_str(line),
            }
            let logical = std::mem::take(&mut pending);
            let (key, value) = logical
                .split_once('=')
                .unwrap_or_else(|| panic!("{where_}: not Key=Value: {logical:?}"));
            let section = section
                .clone()
                .unwrap_or_else(|| panic!("{where_}: {key} before any [Section]"));
            entries.push((section, key.trim().to_string(), value.trim().to_string()));
        }
        assert!(pending.is_empty(), "{name}: ends inside a continued line");
        Unit {
            name: name.to_string(),
            entries,
        }
    }

    /// Every value of a list setting, in order; an empty assignment resets the list.
    fn values(&self, section: &str, key: &str) -> Vec<&str> {
        let mut values = Vec::new();
        for (s, k, v) in &self.entries {
            if s == section && k == key {
                if v.is_empty() {
                    values.clear();
                } else {
                    values.push(v.as_str());
                }
            }
        }
        values
    }

    /// The value of a setting that must be given exactly once.
    fn value(&self, section: &str, key: &str) -> &str {
        match self.values(section, key).as_slice() {
            [one] => one,
            other => panic!(
                "{}: [{section}] {key}= given {} times",
                self.name,
                other.len()
            ),
        }
    }

    /// `Environment=` of [Service], with `%i` expanded.
    fn environment(&self, instance: Option<&str>) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        for value in self.values("Service", "Environment") {
            for assignment in split_words(&specifiers(value, instance)) {
                let (name, value) = assignment
                    .split_once('=')
                    .unwrap_or_else(|| panic!("{}: Environment={assignment:?}", self.name));
                env.insert(name.to_string(), value.to_string());
            }
        }
        env
    }

    /// The argv of the only `key=` command line of [Service].
    fn command(&self, key: &str, instance: Option<&str>) -> Vec<String> {
        let count = self.values("Service", key).len();
        assert_eq!(count, 1, "{}: {key}= given {count} times", self.name);
        self.command_at(key, 0, instance)
    }

    /// The argv of a command line as systemd runs it: prefixes (`-@:+!`) dropped, specifiers and
    /// `${VAR}` (in a word) or `$VAR` (a whole word) from Environment= expanded, quotes removed.
    /// `$MAINPID` and variables systemd does not know from Environment= are left as written.
    fn command_at(&self, key: &str, index: usize, instance: Option<&str>) -> Vec<String> {
        let line = self.values("Service", key)[index];
        let line = line.trim_start_matches(['-', '@', ':', '+', '!']);
        let env = self.environment(instance);
        split_words(&specifiers(line, instance))
            .into_iter()
            .map(|word| expand(&word, &env))
            .collect()
    }
}

/// Expands `%i`, `%I` and `%%`.
fn specifiers(value: &str, instance: Option<&str>) -> String {
    let mut out = String::new();
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some('i' | 'I') => out.push_str(instance.expect("%i in a unit that is no template")),
            other => panic!("unexpected specifier %{other:?} in {value:?}"),
        }
    }
    out
}

/// Splits a value into words as systemd does: whitespace separates, "double" and 'single'
/// quotes group, a backslash escapes the next character.
fn split_words(value: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut chars = value.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return words;
        }
        let mut word = String::new();
        while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
            match c {
                '"' | '\'' => loop {
                    match chars.next() {
                        Some(close) if close == c => break,
                        Some('\\') => word.push(chars.next().expect("backslash at the end")),
                        Some(other) => word.push(other),
                        None => panic!("unterminated quote in {value:?}"),
                    }
                },
                '\\' => word.push(chars.next().expect("backslash at the end")),
                other => word.push(other),
            }
        }
        words.push(word);
    }
}

/// systemd's variable substitution in one word of a command line.
fn expand(word: &str, env: &BTreeMap<String, String>) -> String {
    if let Some(name) = word.strip_prefix('$')
        && let Some(value) = env.get(name)
    {
        return value.clone();
    }
    let mut out = word.to_string();
    for (name, value) in env {
        out = out.replace(&format!("${{{name}}}"), value);
    }
    out
}

/// The value following `flag` in an argv.
fn flag_value<'a>(argv: &'a [String], flag: &str) -> Option<&'a str> {
    let at = argv.iter().position(|a| a == flag)?;
    argv.get(at + 1).map(String::as_str)
}

/// A list setting's words, sorted.
fn words(value: &str) -> Vec<&str> {
    let mut words: Vec<&str> = value.split_whitespace().collect();
    words.sort();
    words
}

/// systemd's spellings of a true boolean.
fn is_true(value: &str) -> bool {
    ["yes", "true", "on", "1"].contains(&value)
}

/// A binary's path as a unit's first word (quoted if it holds whitespace).
fn unit_path(path: &Path) -> String {
    let path = path.display().to_string();
    if path.contains(char::is_whitespace) {
        format!("\"{path}\"")
    } else {
        path
    }
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()))
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn contrib_dir() -> PathBuf {
    repo_root().join("contrib/systemd")
}

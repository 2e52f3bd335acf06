//! The configuration snippets of `/ssh/config`: what a client needs to trust hosts, and what a
//! host needs to trust users and present its certificate.

use std::collections::BTreeMap;

use super::SshCa;

/// One rendered file: its name, where it usually goes, and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snippet {
    pub name: String,
    /// `snippet` (lines to add to an existing file) or `file` (a whole file).
    pub kind: &'static str,
    pub comment: String,
    pub path: String,
    pub content: String,
}

/// Variables the step CLI sends with every `/ssh/config` request: they describe the client
/// (its OS, its STEPPATH, the template version it understands, its context, whether it runs
/// in a console), and what they
/// describe does not change mayfly's snippets.
const STEP_CLIENT_VARIABLES: &[&str] = &[
    "GOOS",
    "StepPath",
    "StepBasePath",
    "StepSSHTemplateVersion",
    "Context",
    "Console",
];

/// Refuses a variable that is neither one of `known` nor one step sends by itself, so that a
/// typo does not silently render the default.
fn check_variables(data: &BTreeMap<String, String>, known: &[&str]) -> Result<(), String> {
    match data
        .keys()
        .find(|k| !known.contains(&k.as_str()) && !STEP_CLIENT_VARIABLES.contains(&k.as_str()))
    {
        Some(unknown) => Err(format!(
            "unknown configuration value {unknown:?}: expected one of {known:?}"
        )),
        None => Ok(()),
    }
}

/// Lines a host adds to sshd_config and the user CA file it names. `data` may set
/// `HostKey`, `HostCertificate`, `TrustedUserCAKeys` and `RevokedKeys` (paths); `Key` and
/// `Certificate`, the names step-ca's templates use (`step ssh config --host --set
/// Certificate=... --set Key=...`), stand for `HostKey` and `HostCertificate`.
pub fn host(ssh: &SshCa, data: &BTreeMap<String, String>) -> Result<Vec<Snippet>, String> {
    const KNOWN: &[&str] = &[
        "HostKey",
        "HostCertificate",
        "TrustedUserCAKeys",
        "RevokedKeys",
        "Key",
        "Certificate",
    ];
    check_variables(data, KNOWN)?;
    let value = |name: &str, step_name: &str| data.get(name).or_else(|| data.get(step_name));
    let host_key = value("HostKey", "Key")
        .cloned()
        .unwrap_or_else(|| "/etc/ssh/ssh_host_ecdsa_key".into());
    let host_certificate = value("HostCertificate", "Certificate")
        .cloned()
        .unwrap_or_else(|| format!("{host_key}-cert.pub"));
    let trusted = data
        .get("TrustedUserCAKeys")
        .cloned()
        .unwrap_or_else(|| "/etc/ssh/mayfly_user_ca.pub".into());
    let mut sshd = format!(
        "# mayfly: trust user certificates signed by the CA, present this host's certificate\n\
         TrustedUserCAKeys {trusted}\n\
         HostKey {host_key}\n\
         HostCertificate {host_certificate}\n"
    );
    if let Some(krl) = data.get("RevokedKeys") {
        sshd.push_str(&format!("RevokedKeys {krl}\n"));
    }
    Ok(vec![
        Snippet {
            name: "sshd_config".into(),
            kind: "snippet",
            comment: "add to sshd_config".into(),
            path: "/etc/ssh/sshd_config".into(),
            content: sshd,
        },
        Snippet {
            name: "ca.pub".into(),
            kind: "file",
            comment: "the user CA keys TrustedUserCAKeys names".into(),
            path: trusted,
            content: format!("{}\n", ssh.user_public_key().to_line()),
        },
    ])
}

/// What a user adds to known_hosts (the host CA as `@cert-authority`) and ssh_config. `User`,
/// which the step CLI always sends (the principal of the user's certificate), is accepted; the
/// snippets are the same for every user.
pub fn user(ssh: &SshCa, data: &BTreeMap<String, String>) -> Result<Vec<Snippet>, String> {
    const KNOWN: &[&str] = &["KnownHosts", "Hosts", "User"];
    check_variables(data, KNOWN)?;
    let hosts = data.get("Hosts").cloned().unwrap_or_else(|| "*".into());
    let known_hosts = data
        .get("KnownHosts")
        .cloned()
        .unwrap_or_else(|| "~/.ssh/known_hosts".into());
    Ok(vec![
        Snippet {
            name: "known_hosts".into(),
            kind: "snippet",
            comment: "trust host certificates signed by the CA".into(),
            path: known_hosts.clone(),
            content: format!(
                "@cert-authority {hosts} {}\n",
                ssh.host_public_key().to_line()
            ),
        },
        Snippet {
            name: "config".into(),
            kind: "snippet",
            comment: "add to ~/.ssh/config".into(),
            path: "~/.ssh/config".into(),
            content: format!(
                "Host {hosts}\n    UserKnownHostsFile {known_hosts}\n    StrictHostKeyChecking yes\n"
            ),
        },
    ])
}

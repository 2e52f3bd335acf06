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

/// Lines a host adds to sshd_config and the user CA file it names. `data` may set
/// `HostKey`, `HostCertificate`, `TrustedUserCAKeys` and `RevokedKeys` (paths); anything else
/// is refused so a typo does not silently render the default.
pub fn host(ssh: &SshCa, data: &BTreeMap<String, String>) -> Result<Vec<Snippet>, String> {
    const KNOWN: &[&str] = &[
        "HostKey",
        "HostCertificate",
        "TrustedUserCAKeys",
        "RevokedKeys",
    ];
    if let Some(unknown) = data.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(format!(
            "unknown configuration value {unknown:?}: expected one of {KNOWN:?}"
        ));
    }
    let host_key = data
        .get("HostKey")
        .cloned()
        .unwrap_or_else(|| "/etc/ssh/ssh_host_ecdsa_key".into());
    let host_certificate = data
        .get("HostCertificate")
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

/// What a user adds to known_hosts (the host CA as `@cert-authority`) and ssh_config.
pub fn user(ssh: &SshCa, data: &BTreeMap<String, String>) -> Result<Vec<Snippet>, String> {
    const KNOWN: &[&str] = &["KnownHosts", "Hosts"];
    if let Some(unknown) = data.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(format!(
            "unknown configuration value {unknown:?}: expected one of {KNOWN:?}"
        ));
    }
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

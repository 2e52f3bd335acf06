//! The audit record: one entry for every certificate issued, renewed, rekeyed or revoked, written
//! by the store in the same transaction as the change it describes, so that the record and the
//! change are durable together or not at all. Entries are only ever appended.

use std::future::Future;
use std::net::IpAddr;

use time::OffsetDateTime;

/// What happened to a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditAction {
    Issued,
    Renewed,
    Rekeyed,
    Revoked,
    SshIssued,
    SshRenewed,
    SshRekeyed,
    SshRevoked,
}

impl AuditAction {
    pub const ALL: [AuditAction; 8] = [
        AuditAction::Issued,
        AuditAction::Renewed,
        AuditAction::Rekeyed,
        AuditAction::Revoked,
        AuditAction::SshIssued,
        AuditAction::SshRenewed,
        AuditAction::SshRekeyed,
        AuditAction::SshRevoked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::Issued => "issued",
            AuditAction::Renewed => "renewed",
            AuditAction::Rekeyed => "rekeyed",
            AuditAction::Revoked => "revoked",
            AuditAction::SshIssued => "ssh-issued",
            AuditAction::SshRenewed => "ssh-renewed",
            AuditAction::SshRekeyed => "ssh-rekeyed",
            AuditAction::SshRevoked => "ssh-revoked",
        }
    }

    pub fn parse(text: &str) -> Option<AuditAction> {
        AuditAction::ALL.into_iter().find(|a| a.as_str() == text)
    }
}

/// Who asked for a change, from where and why: what the audit entry says beside the certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditContext {
    pub action: AuditAction,
    pub at: OffsetDateTime,
    /// The credential that authorised the change: `token <jti>`, `mtls serial <n>`,
    /// `x5c serial <n>`, `sshpop serial <n>`, `acme account <id>`, `offline`, `server`.
    pub credential: String,
    /// The client's IP address, when the request came over the network.
    pub address: Option<IpAddr>,
    /// What else an auditor needs: the serial a renewal replaces, a revocation's reason.
    pub detail: String,
}

impl AuditContext {
    /// A context for a change asked for by the request being served now: the client's address
    /// comes from [`with_client_address`].
    pub fn of_request(
        action: AuditAction,
        at: OffsetDateTime,
        credential: impl Into<String>,
        detail: impl Into<String>,
    ) -> AuditContext {
        AuditContext {
            address: client_address(),
            ..AuditContext::without_client(action, at, credential, detail)
        }
    }

    /// A context for a change no network client asked for: the CA's own certificates
    /// (`server`), or `mayfly ca revoke --offline` (`offline`).
    pub fn without_client(
        action: AuditAction,
        at: OffsetDateTime,
        credential: impl Into<String>,
        detail: impl Into<String>,
    ) -> AuditContext {
        AuditContext {
            action,
            at,
            credential: credential.into(),
            address: None,
            detail: detail.into(),
        }
    }
}

/// A revocation's reason as the audit log gives it: the RFC 5280 name, then the requester's
/// words.
pub fn revocation_detail(reason_code: crate::revocation::ReasonCode, reason: &str) -> String {
    if reason.is_empty() {
        reason_code.name().to_string()
    } else {
        format!("{}: {reason}", reason_code.name())
    }
}

/// One entry of the audit log, as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Assigned by the store in increasing order of insertion.
    pub id: u64,
    pub at: OffsetDateTime,
    pub action: AuditAction,
    /// Decimal serial number (X.509 or SSH).
    pub serial: String,
    /// The subject common name, or an SSH certificate's key id.
    pub subject: String,
    /// Subject alternative names, or an SSH certificate's principals.
    pub sans: Vec<String>,
    pub provisioner: String,
    pub credential: String,
    /// Empty when the change did not come over the network.
    pub address: String,
    pub detail: String,
}

/// Which entries to read: a page in ascending id order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditQuery {
    /// Entries after this id (the last of the previous page).
    pub after: Option<u64>,
    /// Only entries about this serial number.
    pub serial: Option<String>,
    /// Only entries at or after this instant.
    pub since: Option<OffsetDateTime>,
    /// At most this many.
    pub limit: u32,
}

tokio::task_local! {
    static CLIENT_ADDRESS: Option<IpAddr>;
}

/// Runs `request` with `address` as the client's address for the audit entries it writes. The
/// server wraps each request in it: the address is known only to the transport, and threading it
/// through every authority call would put a transport detail in each signature.
pub async fn with_client_address<F: Future>(address: Option<IpAddr>, request: F) -> F::Output {
    CLIENT_ADDRESS.scope(address, request).await
}

/// The address of the client whose request is being served, if any.
pub fn client_address() -> Option<IpAddr> {
    CLIENT_ADDRESS.try_with(|address| *address).ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_reads_back_from_its_name() {
        for action in AuditAction::ALL {
            assert_eq!(AuditAction::parse(action.as_str()), Some(action));
        }
        assert_eq!(AuditAction::parse("deleted"), None);
    }

    #[tokio::test]
    async fn the_client_address_is_seen_only_inside_its_request() {
        assert_eq!(client_address(), None);
        let address: IpAddr = "192.0.2.7".parse().unwrap();
        let seen = with_client_address(Some(address), async { client_address() }).await;
        assert_eq!(seen, Some(address));
        assert_eq!(client_address(), None);
    }
}

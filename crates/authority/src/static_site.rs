//! Static publication: everything a relying party fetches, written as files under one directory
//! laid out like the CA's own URLs, so that a plain web server or a CDN serves revocation while
//! the CA is down or far away (`mayfly ca publish --dir`, and ca.json `publication.dir`).
//!
//! Layout (paths from `mayfly_config::urls`): `1.0/crl`, `1.0/crl-delta`, `1.0/crls/<n>`,
//! `1.0/root.crl`, `1.0/intermediate.crt`, `roots.pem`, `1.0/ssh/krl`, and one pre-signed OCSP
//! response per unexpired certificate at `ocsp/<base64 request>`: the RFC 5019 GET path of the
//! request an RFC 5019 client makes (SHA-1 CertID, no nonce, no extension). Base64 holds `/`,
//! so a request's path runs through nested directories; a web server maps it back, after it has
//! merged repeated slashes, as nginx does by default, and so does the file name here. A path
//! that ends in `/` (about one certificate in two hundred) names a directory, and its response
//! is that directory's index file, [`OCSP_INDEX`], which the web server is told to look for.
//!
//! Every file is replaced atomically (temporary file, then rename): a reader sees the old one
//! or the whole new one. OCSP responses of certificates no longer published are removed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use base64::Engine;
use mayfly_config::files::{PUBLIC_MODE, replace_unsynced, write_atomic};
use mayfly_config::urls;
use mayfly_pki::SerialNumber;
use mayfly_pki::issuer::CertIdHash;

use crate::authority::Authority;
use crate::crl::{CrlKind, CrlPublisher};
use crate::error::{Error, Result};
use crate::store::{AdminStore, CertificatePage, StoredCertificate};

/// The file of an OCSP GET path that ends in `/`: a web server's index file of that directory
/// (nginx `index index.der;`). No base64 name holds a dot, so it never meets a response's file.
pub const OCSP_INDEX: &str = "index.der";

/// Certificates read per store query while pre-signing OCSP responses.
const PAGE: u32 = 5_000;

/// What one publication wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Published {
    /// CRL files: complete, delta, shards and the root's.
    pub crls: usize,
    pub ocsp_responses: usize,
    /// OCSP responses of certificates that expired (or left the store) since the last run.
    pub ocsp_removed: usize,
    pub bytes: u64,
}

/// The directory a publication writes to.
#[derive(Debug)]
pub struct StaticSite {
    dir: PathBuf,
    /// The ETag of each CRL file last written, so an unchanged CRL is not written again.
    crls_written: std::sync::Mutex<HashMap<String, String>>,
}

impl StaticSite {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            crls_written: std::sync::Mutex::new(HashMap::new()),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file serving URL path `path` (`/1.0/crl`).
    pub fn file(&self, path: &str) -> PathBuf {
        let file = self.dir.join(path.trim_start_matches('/'));
        if path.ends_with('/') {
            file.join(OCSP_INDEX)
        } else {
            file
        }
    }

    /// Writes everything `authority` publishes; OCSP responses for each unexpired certificate
    /// `admin` lists.
    pub async fn publish(
        &self,
        authority: &Authority,
        admin: &dyn AdminStore,
    ) -> Result<Published> {
        let mut report = Published::default();
        self.write_revocation_lists(authority, &mut report).await?;
        self.write_ca_certificates(authority, &mut report)?;
        if authority.ssh_ca().is_some() {
            let krl = authority.ssh_krl().await?;
            self.put(urls::SSH_KRL, &krl, true, &mut report)?;
        }
        if authority.ocsp_responder().is_some() {
            self.write_ocsp_responses(authority, admin, &mut report)
                .await?;
        }
        Ok(report)
    }

    /// Only the CRLs: what changes on a revocation, written without re-signing every OCSP
    /// response.
    pub async fn publish_crls(&self, authority: &Authority) -> Result<Published> {
        let mut report = Published::default();
        self.write_revocation_lists(authority, &mut report).await?;
        Ok(report)
    }

    async fn write_revocation_lists(
        &self,
        authority: &Authority,
        report: &mut Published,
    ) -> Result<()> {
        if let Some(crl) = authority.crl_publisher() {
            self.write_crls(crl, report).await?;
        }
        match authority.root_crl() {
            Ok(der) => {
                self.put(urls::ROOT_CRL, &der, true, report)?;
                report.crls += 1;
            }
            Err(Error::RootCrlUnconfigured) => {}
            Err(e) => return Err(e),
        }
        Ok(())
    }

    /// The CRLs `crl` publishes (complete, delta, every shard), each written only when it
    /// changed since this site last wrote it.
    pub async fn write_crls(&self, crl: &CrlPublisher, report: &mut Published) -> Result<()> {
        let mut kinds = vec![(urls::CRL.to_owned(), CrlKind::Full)];
        if crl.settings().delta.is_some() {
            kinds.push((urls::DELTA_CRL.to_owned(), CrlKind::Delta));
        }
        for shard in crl.shards().await? {
            kinds.push((urls::shard_crl(shard.index()), CrlKind::Shard(shard)));
        }
        for (path, kind) in kinds {
            let signed = crl.current(kind).await?;
            if self.crl_unchanged(&path, &signed.etag) {
                continue;
            }
            self.put(&path, &signed.der, true, report)?;
            self.crl_written(path, signed.etag.clone());
            report.crls += 1;
        }
        Ok(())
    }

    fn write_ca_certificates(&self, authority: &Authority, report: &mut Published) -> Result<()> {
        self.put(
            urls::INTERMEDIATE,
            authority.intermediate_der(),
            true,
            report,
        )?;
        let roots: String = authority
            .roots()
            .iter()
            .map(|der| mayfly_pki::cert::certificate_pem(der))
            .collect();
        self.put(urls::ROOTS_PEM, roots.as_bytes(), true, report)
    }

    /// The pre-signed OCSP response about one certificate, as its record now says.
    pub async fn publish_ocsp(
        &self,
        authority: &Authority,
        stored: &StoredCertificate,
    ) -> Result<()> {
        let mut report = Published::default();
        self.write_ocsp_response(authority, stored, &mut report)
            .await
    }

    fn crl_unchanged(&self, path: &str, etag: &str) -> bool {
        let written = match self.crls_written.lock() {
            Ok(written) => written,
            Err(poisoned) => poisoned.into_inner(),
        };
        written.get(path).is_some_and(|e| e == etag) && self.file(path).exists()
    }

    fn crl_written(&self, path: String, etag: String) {
        let mut written = match self.crls_written.lock() {
            Ok(written) => written,
            Err(poisoned) => poisoned.into_inner(),
        };
        written.insert(path, etag);
    }

    /// Writes the response about `stored` (when the CA has a responder) and returns its file.
    async fn write_ocsp_response(
        &self,
        authority: &Authority,
        stored: &StoredCertificate,
        report: &mut Published,
    ) -> Result<()> {
        let Some(ocsp) = authority.ocsp_responder() else {
            return Ok(());
        };
        let Ok(serial) = SerialNumber::from_decimal(&stored.certificate.serial) else {
            return Ok(());
        };
        let request = mayfly_pki::ocsp::build_request(
            ocsp.issuer(),
            serial.as_be_bytes(),
            CertIdHash::Sha1,
            None,
        );
        let cert_id =
            mayfly_pki::ocsp::cert_id_der(ocsp.issuer(), serial.as_be_bytes(), CertIdHash::Sha1);
        let response = ocsp.presign(&cert_id, Some(stored)).await?;
        let path = ocsp_path(&request);
        self.put(&path, &response, false, report)?;
        report.ocsp_responses += 1;
        Ok(())
    }

    async fn write_ocsp_responses(
        &self,
        authority: &Authority,
        admin: &dyn AdminStore,
        report: &mut Published,
    ) -> Result<()> {
        let now = authority.clock().now();
        // Every response written now gets a newer modification time than this; what is older
        // is about a certificate no longer published. (No list of millions of paths is kept.)
        // (A second earlier: file times come from a coarser clock than `now`.)
        let started = std::time::SystemTime::now() - std::time::Duration::from_secs(1);
        let mut page = CertificatePage {
            status: None,
            now,
            after: None,
            limit: PAGE,
        };
        loop {
            let certificates = admin.list_certificates(&page).await.map_err(Error::Store)?;
            let Some(last) = certificates.last() else {
                break;
            };
            page.after = Some(last.certificate.serial.clone());
            for stored in &certificates {
                if stored.certificate.not_after <= now {
                    continue;
                }
                self.write_ocsp_response(authority, stored, report).await?;
            }
        }
        report.ocsp_removed = remove_older(&self.file(urls::OCSP), started)?;
        Ok(())
    }

    /// Replaces the file of URL path `path`; `sync` for the few files whose loss a crash must
    /// not cause (CRLs, certificates), not for each of millions of OCSP responses.
    fn put(&self, path: &str, contents: &[u8], sync: bool, report: &mut Published) -> Result<()> {
        let file = self.file(path);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent).map_err(|e| {
                Error::Io(format!("cannot create directory {}: {e}", parent.display()))
            })?;
        }
        let written = if sync {
            write_atomic(&file, contents, PUBLIC_MODE)
        } else {
            replace_unsynced(&file, contents, PUBLIC_MODE)
        };
        written.map_err(|e| Error::Io(e.to_string()))?;
        report.bytes += contents.len() as u64;
        Ok(())
    }
}

/// The URL path of the GET request carrying `request_der` (RFC 6960 appendix A.1, standard
/// base64), with repeated slashes merged as web servers do before they map a path to a file.
pub fn ocsp_path(request_der: &[u8]) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(request_der);
    let mut path = format!("{}/", urls::OCSP);
    for c in encoded.chars() {
        if !(c == '/' && path.ends_with('/')) {
            path.push(c);
        }
    }
    path
}

/// Removes the files under `dir` last modified before `started` (and the directories left
/// empty); returns how many files went.
fn remove_older(dir: &Path, started: std::time::SystemTime) -> Result<usize> {
    let io =
        |path: &Path, e: std::io::Error| Error::Io(format!("cannot clean {}: {e}", path.display()));
    let mut removed = 0;
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io(dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| io(dir, e))?;
        let path = entry.path();
        let kind = entry.file_type().map_err(|e| io(&path, e))?;
        if kind.is_dir() {
            removed += remove_older(&path, started)?;
            // Fails while it still holds files, which is what is wanted.
            let _ = std::fs::remove_dir(&path);
        } else {
            let modified = entry
                .metadata()
                .and_then(|m| m.modified())
                .map_err(|e| io(&path, e))?;
            if modified < started {
                std::fs::remove_file(&path).map_err(|e| io(&path, e))?;
                removed += 1;
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ocsp_paths_are_the_get_paths_with_slashes_merged() {
        // 0xff 0xff 0xff encodes as "////".
        assert_eq!(ocsp_path(&[0xff, 0xff, 0xff]), "/ocsp/");
        // "MP///g==" as a web server reads it.
        assert_eq!(ocsp_path(&[0x30, 0xff, 0xff, 0xfe]), "/ocsp/MP/g==");
        assert_eq!(ocsp_path(&[0x30, 0xfb, 0xef]), "/ocsp/MPvv");
        assert_eq!(ocsp_path(&[0x30, 0x03]), "/ocsp/MAM=");
    }

    #[test]
    fn cleaning_keeps_what_was_written() {
        let dir = tempfile::tempdir().unwrap();
        let keep = dir.path().join("a/b");
        let old = dir.path().join("a/c/d");
        std::fs::create_dir_all(old.parent().unwrap()).unwrap();
        std::fs::write(&old, b"2").unwrap();
        let an_hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        std::fs::File::options()
            .write(true)
            .open(&old)
            .unwrap()
            .set_modified(an_hour_ago)
            .unwrap();
        let started = std::time::SystemTime::now() - std::time::Duration::from_secs(1);
        std::fs::write(&keep, b"1").unwrap();
        let removed = remove_older(dir.path(), started).unwrap();
        assert_eq!(removed, 1);
        assert!(keep.exists());
        assert!(!dir.path().join("a/c").exists());
    }
}

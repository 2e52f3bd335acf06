//! Test support shared by every crate's tests: where the peers that live beside the checkout
//! are (`../shared`: the interop vectors, the real step CLI and step-ca), and what a test does
//! when one is missing.
//!
//! A fresh clone with nothing beside it must still pass the README's test command, so a test
//! whose peer is absent prints that it skipped and returns. CI sets `MAYFLY_REQUIRE_PEERS=1`
//! (in `.ci/run`): there a missing peer fails the test instead, so a broken install step cannot
//! hide behind a skip.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

/// The variable under which a missing peer is a failure rather than a skip.
pub const REQUIRE_PEERS: &str = "MAYFLY_REQUIRE_PEERS";

/// Whether missing peers fail tests (`MAYFLY_REQUIRE_PEERS` set to anything but `0` or empty).
pub fn peers_required() -> bool {
    std::env::var(REQUIRE_PEERS).is_ok_and(|v| !v.is_empty() && v != "0")
}

/// The `shared` directory beside the checkout, whether or not it exists.
pub fn shared_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared")
}

/// `shared/RELATIVE` when it exists; otherwise `None` after saying that `test` skipped (or a
/// panic when peers are required).
pub fn shared_path(test: &str, relative: &str) -> Option<PathBuf> {
    let path = shared_dir().join(relative);
    if path.exists() {
        return Some(path);
    }
    missing(
        test,
        &format!("{} (../shared beside the checkout)", path.display()),
    )
}

/// The interop vectors (`shared/interop-vectors`), or `None` after reporting the skip.
pub fn interop_vectors(test: &str) -> Option<PathBuf> {
    shared_path(test, "interop-vectors")
}

/// The real step CLI (`shared/tools/step`), or `None` after reporting the skip.
pub fn step_cli(test: &str) -> Option<PathBuf> {
    shared_path(test, "tools/step")
}

/// The real step-ca (`shared/tools/step-ca`), or `None` after reporting the skip.
pub fn step_ca(test: &str) -> Option<PathBuf> {
    shared_path(test, "tools/step-ca")
}

/// A program on PATH (a Debian package's peer such as `haproxy`), or `None` after reporting the
/// skip.
pub fn program(test: &str, program: &str, package: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|candidate| candidate.is_file())
    });
    match found {
        Some(path) => Some(path),
        None => missing(
            test,
            &format!("{program} (Debian package {package}; .ci/run installs it)"),
        ),
    }
}

/// What a test does about one of its peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerOutcome {
    /// The peer is there: the test runs with it.
    Run,
    /// The peer is absent and not required: the test says so and passes.
    Skip,
    /// The peer is absent and required ([`REQUIRE_PEERS`]): the test fails.
    Fail,
}

/// The decision alone, apart from the environment and the file system, so that each of its
/// cases is tested wherever the tests run.
pub fn peer_outcome(present: bool, required: bool) -> PeerOutcome {
    match (present, required) {
        (true, _) => PeerOutcome::Run,
        (false, false) => PeerOutcome::Skip,
        (false, true) => PeerOutcome::Fail,
    }
}

/// Reports a missing peer: a skip, or a failure under [`REQUIRE_PEERS`].
pub fn missing<T>(test: &str, what: &str) -> Option<T> {
    missing_when(test, what, peers_required())
}

/// [`missing`] with the requirement given rather than read from the environment.
fn missing_when<T>(test: &str, what: &str, required: bool) -> Option<T> {
    match peer_outcome(false, required) {
        PeerOutcome::Fail => panic!("{test}: {what} is missing and {REQUIRE_PEERS} is set"),
        PeerOutcome::Skip | PeerOutcome::Run => {
            eprintln!("{test}: skipped, {what} is missing");
            None
        }
    }
}

/// A TCP port for a CA under test such that it and the port above it are free on every address,
/// taken below the kernel's ephemeral range.
///
/// `mayfly ca init --address HOST:P` puts the plain-HTTP listener on P+1, so both must be free
/// when the CA starts, and may be given up and taken again on a restart. A port from the
/// ephemeral range can be taken meanwhile by any process's outgoing connection, and P+1 of an
/// ephemeral port is another test's next client socket; below the range nothing takes it but
/// another listener. Ports are handed out two at a time, spread over the range by process id
/// so that test binaries running side by side do not walk the same ports.
pub fn free_port_pair() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20000;
    let low: u32 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768);
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let pairs = (low.saturating_sub(FIRST + 1) / 2).max(1);
    let start = std::process::id() % pairs;
    for _ in 0..pairs {
        let pair = (start + NEXT.fetch_add(1, Ordering::Relaxed)) % pairs;
        let port = FIRST + 2 * pair;
        let free = |port: u32| {
            u16::try_from(port)
                .ok()
                .is_some_and(|port| std::net::TcpListener::bind(("0.0.0.0", port)).is_ok())
        };
        if free(port) && free(port + 1) {
            if let Ok(port) = u16::try_from(port) {
                return port;
            }
        }
    }
    panic!("no two free ports side by side between {FIRST} and {low}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_is_used_when_present_and_skipped_or_failed_when_absent() {
        assert_eq!(peer_outcome(true, false), PeerOutcome::Run);
        assert_eq!(peer_outcome(true, true), PeerOutcome::Run);
        assert_eq!(peer_outcome(false, false), PeerOutcome::Skip);
        assert_eq!(peer_outcome(false, true), PeerOutcome::Fail);
    }

    /// Both branches, whatever `MAYFLY_REQUIRE_PEERS` is where the tests run.
    #[test]
    fn a_missing_peer_is_a_skip_or_a_failure() {
        assert_eq!(missing_when::<()>("t", "a peer", false), None);
        let outcome = std::panic::catch_unwind(|| missing_when::<()>("t", "a peer", true));
        let message = outcome
            .err()
            .and_then(|panic| panic.downcast::<String>().ok())
            .expect("a missing peer must fail when peers are required");
        assert!(
            message.contains("a peer is missing") && message.contains(REQUIRE_PEERS),
            "{message}"
        );
    }

    /// The paths and programs route a missing peer through the same decision.
    #[test]
    fn an_absent_path_or_program_is_reported_as_missing() {
        let absent = "tools/no-such-peer";
        for outcome in [
            std::panic::catch_unwind(|| shared_path("t", absent)),
            std::panic::catch_unwind(|| program("t", "no-such-program-mayfly", "none")),
        ] {
            match outcome {
                Ok(found) => assert!(found.is_none() && !peers_required()),
                Err(_) => assert!(peers_required()),
            }
        }
    }

    #[test]
    fn a_present_program_is_found() {
        assert!(program("t", "sh", "dash").is_some());
    }
}

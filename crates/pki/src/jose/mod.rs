//! JOSE: JWK (RFC 7517, thumbprints per RFC 7638), JWS compact (RFC 7515) and the PBES2 JWE
//! (RFC 7516/7518) that protects provisioner keys.
pub mod jwe;
pub mod jwk;
pub mod jws;

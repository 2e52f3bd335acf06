//! `mayfly crypto ...` commands that work on local secrets: re-encrypting a private key
//! (`change-pass`) and dividing a secret among people (`shamir`). The JWT commands predate this
//! module and stay in `crate::jwt`.

pub mod change_pass;
pub mod shamir;

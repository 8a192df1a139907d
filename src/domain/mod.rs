//! Pure logic: no HTTP, no SQL. Everything here is unit-tested without I/O.

pub mod backup_codes;
pub mod identity;
pub mod password;
pub mod random;
pub mod roles;
pub mod seal;
pub mod tokens;
pub mod totp;

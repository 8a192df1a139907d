//! Pure logic: no HTTP, no SQL. Everything here is unit-tested without I/O.

pub mod access_rules;
pub mod backup_codes;
pub mod client_ip;
pub mod device_token;
pub mod identity;
pub mod mac;
pub mod oauth;
pub mod passkeys;
pub mod password;
pub mod pre_session;
pub mod random;
pub mod rate_window;
pub mod return_to;
pub mod roles;
pub mod seal;
pub mod signing;
pub mod tokens;
pub mod totp;

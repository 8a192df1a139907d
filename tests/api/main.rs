//! Integration tests over real HTTP. Each test runs on SQLite, and on PostgreSQL when
//! `LATCHKEY_TEST_POSTGRES_URL` is set, each on a database of its own.

mod helpers;

mod admin;
mod admin_clients_pages;
mod admin_console;
mod audit;
mod backchannel_logout;
mod browser;
mod browser_passkeys;
mod cli;
mod cluster;
mod errors;
mod forward_auth;
mod lockout;
mod login;
mod mfa;
mod mod_auth_openidc;
mod notices;
mod oidc;
mod oidc_interop;
mod oidc_logout;
mod openid_client;
mod ops;
mod orgs;
mod passkeys;
mod proxies;
mod rate_limit;
mod recovery;
mod register;
mod resilience;
mod sessions;
mod smtp;
mod tokens;
mod user_views;
mod verification;
mod verify_library;
mod web;

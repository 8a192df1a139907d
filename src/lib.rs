//! Latchkey: a self-hosted authentication server. `main.rs` is the CLI; everything else is here so that
//! tests and benches can build the real application.

#![deny(clippy::unwrap_used, clippy::expect_used)]

pub mod app;
pub mod clock;
pub mod config;
pub mod domain;
pub mod edge;
pub mod error;
pub mod http;
pub mod oauth;
pub mod service;
pub mod store;
pub mod web;

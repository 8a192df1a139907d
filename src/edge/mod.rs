//! What every face (the JSON API, the web pages, the OAuth endpoints) shares at the HTTP edge: the
//! connection loop, the layers every response passes through, the error shape, who is asking, metrics
//! and the per-IP rate limit.

pub mod client;
pub mod error;
pub mod headers;
pub mod metrics;
pub mod rate_limit;
pub mod serve;

//! Integration tests: one binary, real HTTP over loopback against a real
//! server on port 0.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers fail the test by panicking"
)]

mod admin;
mod app_service;
mod binary;
mod helpers;
mod hostile;
mod keys;
mod oidc;
mod python_sdk;

//! Shared fixtures for the integration tests.
#![allow(dead_code)]

use std::sync::Arc;

use kasim_gitlab::{GitLab, ManualClock, Settings};

pub const SECRET: &[u8] = b"kas-shared-secret-for-tests-32b!";
pub const NOW: i64 = 1_700_000_000;
pub const PROXY_URL: &str = "https://kas.gitlab.example.com/k8s-proxy";

pub fn gitlab() -> (GitLab, ManualClock) {
    let clock = ManualClock::new(NOW);
    let gl = GitLab::new(
        Settings { kas_jwt_secret: SECRET.to_vec(), k8s_proxy_url: PROXY_URL.to_owned(), token_seed: 42 },
        Arc::new(clock.clone()),
    );
    (gl, clock)
}

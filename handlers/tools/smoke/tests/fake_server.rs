//! The smoke binary against fake deployments: a healthy one must pass, and every broken one must fail
//! at the right step with a one-line reason.

mod common;

use std::time::{Duration, Instant};

use common::{FakeServer, Faults, fail_line, smoke, text};

const STEPS: [&str; 15] = [
    "discovery",
    "jwks",
    "register",
    "login",
    "verify-token",
    "me",
    "refresh",
    "refresh-again",
    "replay-ancestor",
    "family-revoked",
    "login-again",
    "logout",
    "refresh-after-logout",
    "logout-all",
    "me-after-logout-all",
];

/// Runs the smoke tool against a fake with `faults` and expects it to fail at `step` with a reason
/// containing each of `reason_parts`.
async fn expect_failure(faults: Faults, step: &str, reason_parts: &[&str]) -> FakeServer {
    let server = FakeServer::start(faults).await;
    let output = smoke(&["--base-url", &server.base_url, "--timeout-secs", "5"]).await;
    let (stdout, stderr) = text(&output);
    assert_eq!(
        output.status.code(),
        Some(1),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let line = fail_line(&output);
    assert!(
        line.starts_with(&format!("FAIL {step} (")),
        "wrong step: {line}"
    );
    for part in reason_parts {
        assert!(line.contains(part), "`{part}` missing from: {line}");
    }
    // The steps before the failing one passed, none after it ran.
    let position = STEPS.iter().position(|s| *s == step).unwrap();
    for earlier in &STEPS[..position] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(&format!("ok   {earlier} ("))),
            "{earlier} did not pass:\n{stdout}"
        );
    }
    for later in &STEPS[position..] {
        assert!(
            !stdout
                .lines()
                .any(|l| l.starts_with(&format!("ok   {later} ("))),
            "{later} ran:\n{stdout}"
        );
    }
    // Nothing secret in any output.
    server.with_seen(|seen| {
        for secret in seen.secrets() {
            assert!(
                !stdout.contains(&secret) && !stderr.contains(&secret),
                "a secret leaked into the output"
            );
        }
    });
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_deployment_passes_every_step() {
    let server = FakeServer::start(Faults::default()).await;
    let output = smoke(&["--base-url", &format!("{}/", server.base_url), "--verbose"]).await;
    let (stdout, stderr) = text(&output);
    assert_eq!(
        output.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    for step in STEPS {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(&format!("ok   {step} (")) && l.ends_with(" ms)")),
            "{step} missing:\n{stdout}"
        );
    }
    assert!(
        stdout
            .lines()
            .last()
            .unwrap()
            .starts_with("passed: 15 steps"),
        "{stdout}"
    );
    assert!(stderr.is_empty(), "{stderr}");
    // --verbose shows details but never a token or the password.
    assert!(
        stdout.contains("issuer http://127.0.0.1:")
            && stdout.contains("user_id 00000000-0000-4000-8000-"),
        "{stdout}"
    );
    server.with_seen(|seen| {
        assert_eq!(seen.passwords.len(), 1);
        assert!(seen.refresh_tokens.len() >= 4 && seen.access_tokens.len() >= 4);
        for secret in seen.secrets() {
            assert!(
                !stdout.contains(&secret) && !stderr.contains(&secret),
                "a secret leaked into the output"
            );
        }
    });
    assert_eq!(server.live_refresh_tokens(), 0, "a session was left open");
    assert!(server.all_users_logged_out());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_refresh_token_that_is_accepted_fails_the_run() {
    let server = expect_failure(
        Faults {
            replay_accepted: true,
            ..Faults::default()
        },
        "replay-ancestor",
        &[
            "expected 401 problem+json",
            "replayed ancestor refresh token must be refused",
            "got 200",
        ],
    )
    .await;
    // Cleanup logged out what the broken server handed out, the bonus tokens included.
    assert_eq!(
        server.live_refresh_tokens(),
        0,
        "cleanup left a session open"
    );
    assert!(
        server.all_users_logged_out(),
        "cleanup did not call logout-all"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_family_that_survives_reuse_fails_the_run() {
    expect_failure(
        Faults {
            no_family_revocation: true,
            ..Faults::default()
        },
        "family-revoked",
        &[
            "expected 401 problem+json",
            "family's live refresh token must be revoked",
            "got 200",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwks_that_does_not_verify_the_token_fails_the_run() {
    expect_failure(
        Faults {
            foreign_jwks: true,
            ..Faults::default()
        },
        "verify-token",
        &["signature does not verify with JWK"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwks_with_private_key_material_fails_the_run() {
    expect_failure(
        Faults {
            private_jwks: true,
            ..Faults::default()
        },
        "jwks",
        &["publishes the private or secret member `d`"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_for_another_audience_fails_the_run() {
    expect_failure(
        Faults {
            wrong_audience: true,
            ..Faults::default()
        },
        "verify-token",
        &["aud is \"someone-else\", expected \"keygate\""],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audience_flag_is_honoured() {
    let server = FakeServer::start(Faults {
        wrong_audience: true,
        ..Faults::default()
    })
    .await;
    let output = smoke(&["--base-url", &server.base_url, "--audience", "someone-else"]).await;
    let (stdout, stderr) = text(&output);
    assert_eq!(
        output.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_that_revokes_nothing_fails_the_run() {
    expect_failure(
        Faults {
            logout_ignored: true,
            ..Faults::default()
        },
        "refresh-after-logout",
        &["logged-out refresh token must be refused", "got 200"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_all_that_revokes_nothing_fails_the_run() {
    expect_failure(
        Faults {
            logout_all_ignored: true,
            ..Faults::default()
        },
        "me-after-logout-all",
        &["issued before logout-all must be refused", "got 200"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_without_rotation_fails_the_run() {
    expect_failure(
        Faults {
            no_rotation: true,
            ..Faults::default()
        },
        "refresh",
        &["expected a new refresh token"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profile_of_someone_else_fails_the_run() {
    expect_failure(
        Faults {
            me_other_user: true,
            ..Faults::default()
        },
        "me",
        &["expected user_id", "got Some(\"someone-else\")"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_registration_names_the_problem_title() {
    let server = expect_failure(
        Faults {
            register_refuses: true,
            ..Faults::default()
        },
        "register",
        &["expected 201 with {user_id}, got 400 problem \"Password policy violation\""],
    )
    .await;
    server.with_seen(|seen| {
        assert!(
            !seen.requests.iter().any(|r| r.contains("/auth/login")),
            "ran on after a failure"
        )
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_answered_200_fails_the_run() {
    expect_failure(
        Faults {
            register_200: true,
            ..Faults::default()
        },
        "register",
        &["expected 201", "got 200 (application/json"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_discovery_document_without_jwks_uri_fails_the_run() {
    expect_failure(
        Faults {
            discovery_without_jwks_uri: true,
            ..Faults::default()
        },
        "discovery",
        &["expected an http(s) `jwks_uri`", "got nothing"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_endpoint_hits_the_timeout() {
    let server = FakeServer::start(Faults {
        slow_login: Some(Duration::from_secs(30)),
        ..Faults::default()
    })
    .await;
    let started = Instant::now();
    let output = smoke(&["--base-url", &server.base_url, "--timeout-secs", "1"]).await;
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "the timeout did not apply"
    );
    assert_eq!(output.status.code(), Some(1));
    let line = fail_line(&output);
    assert!(line.starts_with("FAIL login ("), "{line}");
    assert!(
        line.contains("/auth/login") && line.contains("no answer within the 1 s timeout"),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_url_fails_with_a_connection_reason() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let output = smoke(&[
        "--base-url",
        &format!("http://127.0.0.1:{port}"),
        "--timeout-secs",
        "2",
    ])
    .await;
    assert_eq!(output.status.code(), Some(1));
    let line = fail_line(&output);
    assert!(line.starts_with("FAIL discovery ("), "{line}");
    assert!(
        line.contains("cannot connect") && line.contains(&format!("127.0.0.1:{port}")),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_answers_fails_with_a_timeout() {
    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let started = Instant::now();
    let output = smoke(&[
        "--base-url",
        &format!("http://{addr}"),
        "--timeout-secs",
        "1",
    ])
    .await;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(output.status.code(), Some(1));
    let line = fail_line(&output);
    assert!(
        line.starts_with("FAIL discovery (") && line.contains("no answer within the 1 s timeout"),
        "{line}"
    );
}

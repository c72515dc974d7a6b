//! The smoke tool against the real local server (`keygate-local`, started on a free port with a fresh
//! data directory): every step must pass, the mail steps through its file outbox. This is the same check the pipeline runs against each stage.
//!
//! The server binary is `$KEYGATE_LOCAL_BIN` when set; otherwise this test builds it with
//! `cargo build -p keygate-local` (same target directory and profile, so it is up to date, and a
//! no-op when `cargo test --workspace` built it already) and takes the executable's path from cargo's JSON messages.

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{smoke, text, workspace_root};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

fn build_local_server() -> PathBuf {
    if let Some(path) = std::env::var_os("KEYGATE_LOCAL_BIN") {
        return PathBuf::from(path);
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    // Same profile as this test binary, so `cargo test --release` does not build a second copy.
    let release = std::env::current_exe()
        .unwrap()
        .components()
        .any(|c| c.as_os_str() == "release");
    let output = std::process::Command::new(cargo)
        .args([
            "build",
            "-p",
            "keygate-local",
            "--bin",
            "keygate-local",
            "--message-format=json-render-diagnostics",
        ])
        .args(release.then_some("--release"))
        .current_dir(workspace_root())
        .stderr(Stdio::inherit())
        .output()
        .expect("cargo runs");
    assert!(
        output.status.success(),
        "cargo build -p keygate-local failed"
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|msg| {
            msg["reason"] == "compiler-artifact" && msg["target"]["name"] == "keygate-local"
        })
        .find_map(|msg| msg["executable"].as_str().map(PathBuf::from))
        .expect("cargo reports the keygate-local executable")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_server_passes_every_smoke_step() {
    let binary = tokio::task::spawn_blocking(build_local_server)
        .await
        .unwrap();
    let data_dir = tempfile::tempdir().unwrap();
    let mut server = Command::new(&binary)
        .args(["--addr", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir.path())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));

    let logs = Arc::new(Mutex::new(String::new()));
    let sink = logs.clone();
    let mut stderr = BufReader::new(server.stderr.take().unwrap()).lines();
    tokio::spawn(async move {
        while let Ok(Some(line)) = stderr.next_line().await {
            let mut logs = sink.lock().unwrap();
            logs.push_str(&line);
            logs.push('\n');
        }
    });
    let mut stdout = BufReader::new(server.stdout.take().unwrap()).lines();
    let base_url = tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(line)) = stdout.next_line().await {
            if let Some(url) = line.trim().strip_prefix("listening on ") {
                return Some(url.to_owned());
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
    .unwrap_or_else(|| {
        panic!(
            "keygate-local did not print `listening on URL`; its log:\n{}",
            logs.lock().unwrap()
        )
    });
    tokio::spawn(async move { while let Ok(Some(_)) = stdout.next_line().await {} });

    // Without the outbox, the deployment's rule is what can be checked: a verified email is required.
    let output = smoke(&["--base-url", &base_url, "--verbose"]).await;
    let (out, err) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{out}\n{err}");
    assert!(out.contains("skip every session step"), "{out}");
    assert!(
        out.lines()
            .last()
            .unwrap_or("")
            .starts_with("passed: 4 steps"),
        "{out}"
    );

    let outbox = data_dir.path().join("outbox");
    let output = smoke(&[
        "--base-url",
        &base_url,
        "--verbose",
        "--outbox",
        outbox.to_str().unwrap(),
    ])
    .await;
    let (out, err) = text(&output);
    let _ = server.kill().await;
    assert_eq!(
        output.status.code(),
        Some(0),
        "smoke run failed\nstdout:\n{out}\nstderr:\n{err}\nserver log:\n{}",
        logs.lock().unwrap()
    );
    assert!(
        out.lines()
            .last()
            .unwrap_or("")
            .starts_with("passed: 24 steps"),
        "{out}"
    );
    assert!(out.contains("ok   mfa-verify"), "{out}");
    // Nothing secret reached the output: no refresh token (kgrt_ prefix), no JWT, no mailed link.
    for secret in ["kgrt_", "eyJ", "kgev_", "kgpr_"] {
        assert!(!out.contains(secret), "{secret} in {out}");
    }
}

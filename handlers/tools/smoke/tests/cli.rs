//! Usage and configuration errors exit with 2 before any request; --help documents the contract.

use std::process::{Command, Output};

fn smoke(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keygate-smoke"))
        .args(args)
        .output()
        .unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn usage_errors_exit_with_2() {
    let cases: [(&[&str], &str); 7] = [
        (&[], "--base-url"),
        (&["--base-url", "ftp://example.com"], "http:// or https://"),
        (&["--base-url", "not a url"], "is not a URL"),
        (&["--base-url", "https://example.com/prod?x=1"], "query"),
        (
            &["--base-url", "https://example.com", "--timeout-secs", "0"],
            "--timeout-secs",
        ),
        (
            &[
                "--base-url",
                "https://example.com",
                "--email-domain",
                "localhost",
            ],
            "--email-domain",
        ),
        (&["--base-url", "https://example.com", "--bogus"], "--bogus"),
    ];
    for (args, message) in cases {
        let output = smoke(args);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            stderr(&output)
        );
        assert!(
            stderr(&output).contains(message),
            "{args:?}: {}",
            stderr(&output)
        );
        assert!(output.stdout.is_empty(), "{args:?} printed to stdout");
    }
}

#[test]
fn help_documents_the_checks_exit_codes_and_leftover_users() {
    let output = smoke(&["--help"]);
    assert_eq!(output.status.code(), Some(0));
    let help = String::from_utf8_lossy(&output.stdout);
    for needle in [
        "--base-url",
        "--timeout-secs",
        "[default: 10]",
        "--email-domain",
        "[default: smoke.keygate.invalid]",
        "--audience",
        "[default: keygate]",
        "--verbose",
        "Throwaway users remain",
        "no delete endpoint",
        "logged out",
        "replay-ancestor",
        "Exit codes: 0",
        "2 usage or configuration error",
    ] {
        assert!(
            help.contains(needle),
            "`{needle}` missing from --help:\n{help}"
        );
    }
}

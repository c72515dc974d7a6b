//! Lambda function `rotate-keys`: Secrets Manager's rotation function for the signing-key secret.
//! Only wiring; the four steps are `keygate_core::rotation`, the shell `keygate_lambda::shell::run_rotation`.

fn main() -> std::process::ExitCode {
    keygate_lambda::run_rotation()
}

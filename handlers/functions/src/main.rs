//! Every keygate Lambda function, one binary: each runs the function its `KEYGATE_FUNCTION` names
//! (`keygate_lambda::functions::FUNCTIONS`). Only wiring; see `keygate_lambda::shell`.

fn main() -> std::process::ExitCode {
    keygate_lambda::run_function_from_env()
}

#[test]
fn the_contract_names_this_binary() {
    assert_eq!(env!("CARGO_PKG_NAME"), keygate_lambda::functions::BINARY);
    assert_eq!(env!("CARGO_BIN_NAME"), keygate_lambda::functions::BINARY);
}

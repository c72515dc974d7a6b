//! Lambda function `well-known`: the endpoints of `keygate_lambda::functions::WELL_KNOWN`. Only wiring; see
//! `keygate_lambda::shell`.

use keygate_lambda::functions;
use keygate_lambda::run_http;

fn main() -> std::process::ExitCode {
    run_http(&functions::WELL_KNOWN)
}

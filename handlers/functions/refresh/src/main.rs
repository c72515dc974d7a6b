//! Lambda function `refresh`: the endpoints of `keygate_lambda::functions::REFRESH`. Only wiring; see
//! `keygate_lambda::shell`.

use keygate_lambda::functions;
use keygate_lambda::run_http;

fn main() -> std::process::ExitCode {
    run_http(&functions::REFRESH)
}

//! Lambda function `me`: the endpoints of `keygate_lambda::functions::ME`. Only wiring; see
//! `keygate_lambda::shell`.

use keygate_lambda::functions;
use keygate_lambda::run_http;

fn main() -> std::process::ExitCode {
    run_http(&functions::ME)
}

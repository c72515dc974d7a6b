//! Lambda function `register`: the endpoints of `keygate_aws::functions::REGISTER`. Only wiring; see
//! `keygate_aws::shell`.

use keygate_aws::functions;
use keygate_aws::shell::run_http;

fn main() -> std::process::ExitCode {
    run_http(&functions::REGISTER)
}

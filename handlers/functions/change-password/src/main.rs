//! Lambda function `change-password`: the endpoints of `keygate_aws::functions::CHANGE_PASSWORD`. Only wiring; see
//! `keygate_aws::shell`.

use keygate_aws::functions;
use keygate_aws::shell::run_http;

fn main() -> std::process::ExitCode {
    run_http(&functions::CHANGE_PASSWORD)
}

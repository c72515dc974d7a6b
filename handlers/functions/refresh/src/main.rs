//! Lambda function `refresh`: the endpoints of `keygate_aws::functions::REFRESH`. Only wiring; see
//! `keygate_aws::shell`.

use keygate_aws::functions;
use keygate_aws::shell::run_http;

fn main() -> std::process::ExitCode {
    run_http(&functions::REFRESH)
}

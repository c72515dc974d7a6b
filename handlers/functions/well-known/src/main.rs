//! Lambda function `well-known`: the endpoints of `keygate_aws::functions::WELL_KNOWN`. Only wiring; see
//! `keygate_aws::shell`.

use keygate_aws::functions;
use keygate_aws::shell::run_http_without_table;

fn main() -> std::process::ExitCode {
    run_http_without_table(&functions::WELL_KNOWN)
}

//! Lambda function `logout-all`: POST /auth/logout-all. Only wiring; see `keygate_aws::shell`.

use keygate_aws::shell::run_http;
use keygate_http::Endpoint;

fn main() -> std::process::ExitCode {
    run_http(&[Endpoint::LogoutAll])
}

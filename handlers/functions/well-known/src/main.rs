//! Lambda function `well-known`: GET /.well-known/jwks.json and GET /.well-known/openid-configuration. Only wiring; see `keygate_aws::shell`.

use keygate_aws::functions;
use keygate_aws::shell::run_http_without_table;

fn main() -> std::process::ExitCode {
    run_http_without_table(&functions::WELL_KNOWN)
}

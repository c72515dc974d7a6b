//! Every public price the `power` and `cost` commands use, in one table, with its source and the date
//! it was checked. us-east-1, on-demand, first volume tier, no free tier unless a row says so.
//!
//! Checked on 2026-12-04 against stored copies of the AWS pricing pages listed (and, where a copy was
//! not stored, the same figure quoted by at least two secondary pages found beside them): AWS changes
//! prices, so check them again before relying on a figure. DynamoDB's on-demand rates are the ones
//! after the November 2024 reduction; Cognito's are the feature-plan prices introduced in November
//! 2024 (a user pool created before then may still have the older 50,000-MAU free tier).

/// One price: `usd` per `unit`.
#[derive(Debug, Clone, Copy)]
pub struct Price {
    pub what: &'static str,
    pub usd: f64,
    pub unit: &'static str,
    pub source: &'static str,
}

pub struct PriceTable {
    pub checked: &'static str,
    pub region: &'static str,
    pub lambda_x86_gb_s: Price,
    pub lambda_arm64_gb_s: Price,
    pub lambda_requests_per_million: Price,
    pub api_rest_per_million: Price,
    pub api_http_per_million: Price,
    pub waf_web_acl_month: Price,
    pub waf_rule_month: Price,
    pub waf_requests_per_million: Price,
    pub dynamodb_wru_per_million: Price,
    pub dynamodb_rru_per_million: Price,
    pub secret_month: Price,
    pub secrets_api_per_10k: Price,
    pub kms_key_month: Price,
    pub kms_requests_per_10k: Price,
    pub logs_ingestion_gb: Price,
    pub custom_metric_month: Price,
    pub ses_per_1000: Price,
    pub cognito_essentials_mau: Price,
    pub cognito_essentials_free_mau: Price,
}

const LAMBDA: &str = "https://aws.amazon.com/lambda/pricing/";
const API_GATEWAY: &str = "https://aws.amazon.com/api-gateway/pricing/";
const WAF: &str = "https://aws.amazon.com/waf/pricing/";
const DYNAMODB: &str = "https://aws.amazon.com/dynamodb/pricing/on-demand/";
const SECRETS: &str = "https://aws.amazon.com/secrets-manager/pricing/";
const KMS: &str = "https://aws.amazon.com/kms/pricing/";
const CLOUDWATCH: &str = "https://aws.amazon.com/cloudwatch/pricing/";
const SES: &str = "https://aws.amazon.com/ses/pricing/";
const COGNITO: &str = "https://aws.amazon.com/cognito/pricing/";

pub const PRICES: PriceTable = PriceTable {
    checked: "2026-12-04",
    region: "us-east-1",
    lambda_x86_gb_s: Price {
        what: "Lambda duration, x86_64 (first 6 billion GB-s a month)",
        usd: 0.000_016_666_7,
        unit: "GB-s",
        source: LAMBDA,
    },
    lambda_arm64_gb_s: Price {
        what: "Lambda duration, arm64 (first 7.5 billion GB-s a month)",
        usd: 0.000_013_333_4,
        unit: "GB-s",
        source: LAMBDA,
    },
    lambda_requests_per_million: Price {
        what: "Lambda requests",
        usd: 0.20,
        unit: "1M requests",
        source: LAMBDA,
    },
    api_rest_per_million: Price {
        what: "API Gateway REST API calls (first 333 million a month)",
        usd: 3.50,
        unit: "1M requests",
        source: API_GATEWAY,
    },
    api_http_per_million: Price {
        what: "API Gateway HTTP API calls (first 300 million a month)",
        usd: 1.00,
        unit: "1M requests",
        source: API_GATEWAY,
    },
    waf_web_acl_month: Price {
        what: "WAF web ACL",
        usd: 5.00,
        unit: "web ACL-month",
        source: WAF,
    },
    waf_rule_month: Price {
        what: "WAF rule or AWS managed rule group (baseline groups carry no extra fee)",
        usd: 1.00,
        unit: "rule-month",
        source: WAF,
    },
    waf_requests_per_million: Price {
        what: "WAF requests inspected",
        usd: 0.60,
        unit: "1M requests",
        source: WAF,
    },
    dynamodb_wru_per_million: Price {
        what: "DynamoDB on-demand write request units (Standard table class)",
        usd: 0.625,
        unit: "1M WRU",
        source: DYNAMODB,
    },
    dynamodb_rru_per_million: Price {
        what: "DynamoDB on-demand read request units (Standard table class)",
        usd: 0.125,
        unit: "1M RRU",
        source: DYNAMODB,
    },
    secret_month: Price {
        what: "Secrets Manager secret",
        usd: 0.40,
        unit: "secret-month",
        source: SECRETS,
    },
    secrets_api_per_10k: Price {
        what: "Secrets Manager API calls",
        usd: 0.05,
        unit: "10,000 calls",
        source: SECRETS,
    },
    kms_key_month: Price {
        what: "KMS customer managed key",
        usd: 1.00,
        unit: "key-month",
        source: KMS,
    },
    kms_requests_per_10k: Price {
        what: "KMS requests (symmetric)",
        usd: 0.03,
        unit: "10,000 requests",
        source: KMS,
    },
    logs_ingestion_gb: Price {
        what: "CloudWatch Logs ingestion (standard class; vended WAF logs are the same in the first tier)",
        usd: 0.50,
        unit: "GB",
        source: CLOUDWATCH,
    },
    custom_metric_month: Price {
        what: "CloudWatch custom metric (first 10,000), EMF metrics included",
        usd: 0.30,
        unit: "metric-month",
        source: CLOUDWATCH,
    },
    ses_per_1000: Price {
        what: "SES outbound mail",
        usd: 0.10,
        unit: "1,000 mails",
        source: SES,
    },
    cognito_essentials_mau: Price {
        what: "Cognito user pools, Essentials plan, per MAU above the free tier",
        usd: 0.015,
        unit: "MAU",
        source: COGNITO,
    },
    cognito_essentials_free_mau: Price {
        what: "Cognito Essentials free tier (MAU a month, direct or social sign-in)",
        usd: 10_000.0,
        unit: "MAU free",
        source: COGNITO,
    },
};

impl PriceTable {
    pub fn rows(&self) -> [&Price; 19] {
        [
            &self.lambda_x86_gb_s,
            &self.lambda_arm64_gb_s,
            &self.lambda_requests_per_million,
            &self.api_rest_per_million,
            &self.api_http_per_million,
            &self.waf_web_acl_month,
            &self.waf_rule_month,
            &self.waf_requests_per_million,
            &self.dynamodb_wru_per_million,
            &self.dynamodb_rru_per_million,
            &self.secret_month,
            &self.secrets_api_per_10k,
            &self.kms_key_month,
            &self.kms_requests_per_10k,
            &self.logs_ingestion_gb,
            &self.custom_metric_month,
            &self.ses_per_1000,
            &self.cognito_essentials_mau,
            &self.cognito_essentials_free_mau,
        ]
    }

    /// The table as Markdown, for the reports.
    pub fn markdown(&self) -> String {
        let mut out = format!(
            "Prices ({}, checked {}; `handlers/tools/bench/src/prices.rs`):\n\n| price | USD | per | source |\n| --- | ---: | --- | --- |\n",
            self.region, self.checked
        );
        for p in self.rows() {
            out.push_str(&format!(
                "| {} | {} | {} | {} |\n",
                p.what,
                format_usd(p.usd),
                p.unit,
                p.source
            ));
        }
        out
    }

    /// Lambda's price of one invocation of `billed_ms` at `memory_mb` (GB = MB / 1024), x86 or arm64.
    pub fn lambda_invocation(&self, memory_mb: u32, billed_ms: f64, arm64: bool) -> f64 {
        let gb_s = f64::from(memory_mb) / 1024.0 * billed_ms / 1000.0;
        let rate = if arm64 {
            self.lambda_arm64_gb_s.usd
        } else {
            self.lambda_x86_gb_s.usd
        };
        gb_s * rate + self.lambda_requests_per_million.usd / 1e6
    }
}

fn format_usd(usd: f64) -> String {
    if usd >= 1000.0 {
        format!("{usd:.0}")
    } else if usd >= 0.01 {
        format!("{usd}")
    } else {
        format!("{usd:.10}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_invocation_is_gb_seconds_plus_the_request() {
        // 512 MB for 100 ms: 0.5 GB x 0.1 s = 0.05 GB-s.
        let x86 = PRICES.lambda_invocation(512, 100.0, false);
        assert!((x86 - (0.05 * 0.000_016_666_7 + 0.000_000_2)).abs() < 1e-15);
        let arm = PRICES.lambda_invocation(512, 100.0, true);
        assert!((arm - (0.05 * 0.000_013_333_4 + 0.000_000_2)).abs() < 1e-15);
        // Per million invocations: $0.8333 + $0.20 on x86.
        assert!((x86 * 1e6 - 1.033_335).abs() < 1e-6);
    }

    #[test]
    fn every_price_has_a_source_and_prints() {
        for p in PRICES.rows() {
            assert!(
                p.source.starts_with("https://aws.amazon.com/"),
                "{}",
                p.what
            );
            assert!(p.usd > 0.0);
        }
        let table = PRICES.markdown();
        assert!(
            table.contains(
                "| Lambda duration, x86_64 (first 6 billion GB-s a month) | 0.0000166667 | GB-s |"
            ),
            "{table}"
        );
        assert!(
            table.contains("| SES outbound mail | 0.1 | 1,000 mails |"),
            "{table}"
        );
    }
}

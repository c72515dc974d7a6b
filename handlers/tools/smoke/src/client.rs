//! A small HTTP client over reqwest: one timeout for every call, bodies read with a size cap, errors
//! turned into one-line reasons, and answers described without ever echoing a body.

use std::error::Error as _;
use std::time::Duration;

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use serde::Deserialize;
use serde_json::Value;

/// Answers larger than this are refused (a keygate answer is a few KiB at most).
const MAX_BODY_BYTES: usize = 1024 * 1024;

pub struct Http {
    client: reqwest::Client,
    timeout: Duration,
}

/// One HTTP answer, read completely.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

/// RFC 9457 problem details, as far as the smoke tool reads them.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub title: Option<String>,
    pub status: Option<u16>,
    pub detail: Option<String>,
}

impl Http {
    pub fn new(timeout: Duration) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            // An auth API answers directly; following a redirect could carry a password elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("keygate-smoke/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {}", chain(&e)))?;
        Ok(Self { client, timeout })
    }

    pub async fn get(&self, url: &str, bearer: Option<&str>) -> Result<Reply, String> {
        let mut request = self.client.get(url).header(ACCEPT, "application/json");
        if let Some(token) = bearer {
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        self.send(request).await
    }

    pub async fn post_json(
        &self,
        url: &str,
        body: &Value,
        bearer: Option<&str>,
    ) -> Result<Reply, String> {
        let mut request = self
            .client
            .post(url)
            .header(ACCEPT, "application/json")
            .json(body);
        if let Some(token) = bearer {
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        self.send(request).await
    }

    pub async fn post_empty(&self, url: &str, bearer: &str) -> Result<Reply, String> {
        let request = self
            .client
            .post(url)
            .header(ACCEPT, "application/json")
            .header(AUTHORIZATION, format!("Bearer {bearer}"));
        self.send(request).await
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Reply, String> {
        let mut response = request.send().await.map_err(|e| self.describe_error(&e))?;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.describe_error(&e))?
        {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(format!(
                    "the answer ({status}) is larger than {MAX_BODY_BYTES} bytes"
                ));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Reply {
            status,
            content_type,
            body,
        })
    }

    fn describe_error(&self, error: &reqwest::Error) -> String {
        let secs = self.timeout.as_secs_f64();
        if error.is_timeout() {
            format!("no answer within the {secs} s timeout")
        } else if error.is_connect() {
            format!("cannot connect: {}", chain(error))
        } else {
            format!("request failed: {}", chain(error))
        }
    }
}

/// An error's sources on one line, without repeating a message a wrapper already holds. reqwest's
/// own top message ("error sending request for url (...)") is left out when there are sources: the
/// caller names the request already.
fn chain(error: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current: Option<&dyn std::error::Error> = error.source();
    while let Some(e) = current {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        current = e.source();
    }
    if parts.is_empty() {
        error.to_string()
    } else {
        parts.join(": ")
    }
}

impl Reply {
    pub fn is_problem(&self) -> bool {
        self.content_type
            .as_deref()
            .is_some_and(|ct| media_type(ct) == "application/problem+json")
    }

    pub fn is_json(&self) -> bool {
        self.content_type.as_deref().is_some_and(|ct| {
            let mt = media_type(ct);
            mt == "application/json" || mt.ends_with("+json")
        })
    }

    pub fn problem(&self) -> Option<Problem> {
        if !self.is_problem() {
            return None;
        }
        serde_json::from_slice(&self.body).ok()
    }

    /// The JSON body of a successful answer.
    pub fn json(&self) -> Result<Value, String> {
        serde_json::from_slice(&self.body).map_err(|e| {
            format!(
                "the {} answer is not JSON ({}, {} bytes: {e})",
                self.status,
                self.content_type.as_deref().unwrap_or("no content type"),
                self.body.len()
            )
        })
    }

    /// `401 problem "Unauthorized": the refresh token is invalid` or `500 text/html, 120 bytes`; the
    /// body itself is only shown through a problem's title and detail.
    pub fn describe(&self) -> String {
        if let Some(problem) = self.problem() {
            let mut out = format!("{} problem", self.status);
            if let Some(title) = problem.title.as_deref().filter(|t| !t.is_empty()) {
                out.push_str(&format!(" {:?}", shorten(title, 120)));
            }
            if let Some(detail) = problem.detail.as_deref().filter(|d| !d.is_empty()) {
                out.push_str(&format!(": {}", shorten(detail, 160)));
            }
            return out;
        }
        // API Gateway and WAF answer errors of their own as {"message": "..."} (e.g. "Missing
        // Authentication Token" for a wrong path or stage): worth showing, as errors carry no secret.
        if self.status >= 400
            && self.is_json()
            && let Some(message) = serde_json::from_slice::<Value>(&self.body)
                .ok()
                .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_owned))
        {
            return format!(
                "{} {:?} ({})",
                self.status,
                shorten(&message, 160),
                media_type(self.content_type.as_deref().unwrap_or(""))
            );
        }
        match self.content_type.as_deref() {
            Some(ct) => format!(
                "{} ({}, {} bytes)",
                self.status,
                media_type(ct),
                self.body.len()
            ),
            None if self.body.is_empty() => format!("{} (empty body)", self.status),
            None => format!(
                "{} (no content type, {} bytes)",
                self.status,
                self.body.len()
            ),
        }
    }
}

fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

fn shorten(text: &str, max: usize) -> String {
    let one_line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if one_line.chars().count() <= max {
        one_line
    } else {
        format!("{}...", one_line.chars().take(max).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: u16, ct: Option<&str>, body: &str) -> Reply {
        Reply {
            status,
            content_type: ct.map(str::to_owned),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn problems_are_described_by_title_and_detail() {
        let r = reply(
            401,
            Some("application/problem+json"),
            r#"{"type":"about:blank","title":"Unauthorized","status":401,"detail":"the refresh token is invalid"}"#,
        );
        assert_eq!(
            r.describe(),
            r#"401 problem "Unauthorized": the refresh token is invalid"#
        );
        assert_eq!(r.problem().unwrap().status, Some(401));
    }

    #[test]
    fn other_bodies_are_not_echoed() {
        let r = reply(
            200,
            Some("application/json; charset=utf-8"),
            r#"{"access_token":"secret"}"#,
        );
        assert_eq!(r.describe(), "200 (application/json, 25 bytes)");
        assert!(r.is_json() && !r.is_problem());
        assert_eq!(reply(204, None, "").describe(), "204 (empty body)");
        let gateway = reply(
            403,
            Some("application/json"),
            r#"{"message":"Missing Authentication Token"}"#,
        );
        assert_eq!(
            gateway.describe(),
            r#"403 "Missing Authentication Token" (application/json)"#
        );
    }
}

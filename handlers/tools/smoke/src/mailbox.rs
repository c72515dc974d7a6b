//! Mail as its recipient reads it: keygate-local's file outbox (`--mailer file`: one `.eml` per mail
//! under `<data-dir>/outbox`), and the link token and code in a mail's text.

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The token of the first `#token=` link in a mail's text.
pub fn token_in(text: &str) -> Option<String> {
    let (_, rest) = text.split_once("#token=")?;
    let token: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect();
    (!token.is_empty()).then_some(token)
}

/// The 8 digits after the first `code:` that is followed by exactly 8 digits, as the mails of
/// handlers/core/src/mail.rs present it ("Or enter this code: 39311040"). Any other run of digits
/// is not the code: the throwaway address itself (in `To:`, hex after the timestamp) may hold 8.
pub fn code_in(text: &str) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    lower.match_indices("code:").find_map(|(at, label)| {
        let rest = text[at + label.len()..].trim_start();
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        (digits.len() == 8).then_some(digits)
    })
}

/// An `.eml` file quoted-printable decoded (soft line breaks joined, `=XX` bytes restored): the
/// message as its reader sees it, headers included.
pub fn decode_eml(eml: &str) -> String {
    let joined = eml.replace("=\r\n", "").replace("=\n", "");
    let bytes = joined.as_bytes();
    let hex = |b: Option<&u8>| b.and_then(|&b| (b as char).to_digit(16));
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'='
            && let (Some(hi), Some(lo)) = (hex(bytes.get(i + 1)), hex(bytes.get(i + 2)))
        {
            out.push((hi * 16 + lo) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The `To:` address of an `.eml` file.
pub fn recipient(eml: &str) -> Option<String> {
    eml.lines()
        .take_while(|line| !line.trim().is_empty())
        .find_map(|line| line.strip_prefix("To: "))
        .map(|to| to.trim().to_owned())
}

/// A folder of `.eml` files written by keygate-local's file mailer.
#[derive(Debug, Clone)]
pub struct FileOutbox {
    pub dir: PathBuf,
}

impl FileOutbox {
    /// Waits up to `timeout` for a mail to `to` (compared lower-case) whose text holds `needle`,
    /// removes it from the folder, and returns its decoded text.
    pub async fn take(&self, to: &str, needle: &str, timeout: Duration) -> Result<String, String> {
        let to = to.to_lowercase();
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(entries) = std::fs::read_dir(&self.dir) {
                for entry in entries.flatten() {
                    let path = entry.path();
                    if path.extension().is_none_or(|e| e != "eml") {
                        continue;
                    }
                    let Ok(eml) = std::fs::read_to_string(&path) else {
                        continue;
                    };
                    let text = decode_eml(&eml);
                    if recipient(&eml).as_deref() == Some(to.as_str()) && text.contains(needle) {
                        let _ = std::fs::remove_file(&path);
                        return Ok(text);
                    }
                }
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "no mail holding `{needle}` for the throwaway user in {} within {} s",
                    self.dir.display(),
                    timeout.as_secs()
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quoted_printable_mail_gives_back_its_link_and_code() {
        let eml = "To: ada@example.com\r\nSubject: x\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
                   open http://app/verify-email#token=3Dkgev_AXBt-de12345678yw=\r\nUfjN\r\n\r\n\
                   Or enter this code: 39311040\r\n";
        let text = decode_eml(eml);
        assert_eq!(
            token_in(&text).as_deref(),
            Some("kgev_AXBt-de12345678ywUfjN")
        );
        assert_eq!(code_in(&text).as_deref(), Some("39311040"));
        assert_eq!(recipient(eml).as_deref(), Some("ada@example.com"));
        assert_eq!(token_in("no link"), None);
        assert_eq!(code_in("code: 1234567 and code: 123456789"), None);
    }

    #[test]
    fn eight_digits_in_the_address_are_not_taken_for_the_code() {
        // The address CI once drew: its hex tag holds "39283171" between letters.
        let eml = "To: smoke-1796496772-9582f39283171a92@smoke.keygate.invalid\r\n\r\n\
                   Hi smoke-1796496772-9582f39283171a92@smoke.keygate.invalid\r\n\
                   Or enter this code: 01234567\r\n";
        assert_eq!(code_in(&decode_eml(eml)).as_deref(), Some("01234567"));
    }
}

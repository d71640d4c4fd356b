//! Keeping CHAP secrets out of logs and out of answers to callers that are not
//! root.
//!
//! tgt itself logs `user=NAME,password=SECRET` for every `account new` at `-d 1`, and
//! its `tgt-admin --verbose` echoes `--password=SECRET`. Here the daemon's log never
//! carries a secret at any level, and of the management answers only root's carry
//! them (root keeps tgt's exact output, including `tgt-admin --dump --full`):
//! another caller (the daemon's own uid when it runs unprivileged) gets the same
//! answer with every secret replaced.

use super::Response;
use serde_json::Value;
use std::borrow::Cow;

/// What stands for a secret in text: log lines, verbose tgt-admin commands.
pub const MASK: &str = "********";

/// What stands for a secret in a configuration handed to a non-root caller: the
/// placeholder tgt-admin's own `--dump` writes, so the dumped file still parses
/// and says what to fix.
pub const HIDDEN_PASSWORD: &str = "PLEASE_CORRECT_THE_PASSWORD";

/// Directives whose second word is a secret (targets.conf).
const USER_DIRECTIVES: [&str; 4] = [
    "incominguser",
    "outgoinguser",
    "incomingdiscoveryuser",
    "outgoingdiscoveryuser",
];

/// `text` with every secret it may carry masked: `--password=S`, `--password S`,
/// `password=S` (tgt's `user=U,password=S` parameter form), and the secret word of
/// a targets.conf `incominguser U S` / `outgoinguser U S` line. Borrowed when there
/// is nothing to mask.
pub fn redact_text(text: &str) -> Cow<'_, str> {
    let lower = text.to_ascii_lowercase();
    if !lower.contains("password") && !USER_DIRECTIVES.iter().any(|d| lower.contains(d)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        out.push_str(&redact_line(line));
    }
    Cow::Owned(out)
}

/// One line (its newline, if any, kept).
fn redact_line(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    // Split into words and the runs of separators between them, keeping both.
    let mut hide_next_word = false;
    // After a user directive: the first word is the user, the second the secret.
    let mut directive_words: Option<u8> = None;
    let mut rest = line;
    while !rest.is_empty() {
        let sep_len = rest
            .find(|c: char| !c.is_whitespace())
            .unwrap_or(rest.len());
        out.push_str(&rest[..sep_len]);
        rest = &rest[sep_len..];
        if rest.is_empty() {
            break;
        }
        let word_len = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let word = &rest[..word_len];
        rest = &rest[word_len..];
        if hide_next_word {
            out.push_str(MASK);
            hide_next_word = false;
            continue;
        }
        if let Some(n) = directive_words.as_mut() {
            *n += 1;
            if *n == 2 {
                out.push_str(MASK);
                directive_words = None;
                continue;
            }
        }
        let bare = word.trim_start_matches(['\'', '"']);
        if USER_DIRECTIVES.iter().any(|d| bare.eq_ignore_ascii_case(d)) {
            directive_words = Some(0);
        }
        if bare.eq_ignore_ascii_case("--password") || bare.eq_ignore_ascii_case("-password") {
            hide_next_word = true;
        }
        out.push_str(&redact_assignments(word));
    }
    out
}

/// `password=S` anywhere in a word (also after a comma or a `--`): S up to the
/// next comma is masked.
fn redact_assignments(word: &str) -> Cow<'_, str> {
    let lower = word.to_ascii_lowercase();
    if !lower.contains("password=") {
        return Cow::Borrowed(word);
    }
    let mut out = String::with_capacity(word.len());
    let mut pos = 0;
    while let Some(found) = lower[pos..].find("password=") {
        let value_start = pos + found + "password=".len();
        out.push_str(&word[pos..value_start]);
        let value_end = word[value_start..]
            .find(',')
            .map_or(word.len(), |e| value_start + e);
        out.push_str(MASK);
        pos = value_end;
    }
    out.push_str(&word[pos..]);
    Cow::Owned(out)
}

/// Every `"password"` member of `v`, at any depth, set to [`HIDDEN_PASSWORD`].
fn redact_json(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if k.eq_ignore_ascii_case("password") && v.is_string() {
                    *v = Value::String(HIDDEN_PASSWORD.into());
                } else {
                    redact_json(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_json),
        Value::String(s) => {
            if let Cow::Owned(r) = redact_text(s) {
                *s = r;
            }
        }
        _ => {}
    }
}

impl Response {
    /// This answer as a caller that is not root may see it: secrets masked in the
    /// text ([`redact_text`]) and replaced by [`HIDDEN_PASSWORD`] in the data.
    pub fn without_secrets(mut self) -> Response {
        if let Some(out) = &mut self.output {
            if let Cow::Owned(r) = redact_text(out) {
                *out = r;
            }
        }
        if let Some(data) = &mut self.data {
            redact_json(data);
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn text_without_secrets_is_untouched() {
        let t = "Target 1: iqn.2026-01.test:t1\n    Account information:\n        alice\n";
        assert!(matches!(redact_text(t), Cow::Borrowed(_)));
    }

    #[test]
    fn command_forms_are_masked() {
        assert_eq!(
            redact_text(
                "tgtadm --lld iscsi --mode account --op new --user=alice --password=Sup3rS3cret\n"
            ),
            "tgtadm --lld iscsi --mode account --op new --user=alice --password=********\n"
        );
        assert_eq!(
            redact_text("tgtadm --op new --user alice --password Sup3rS3cret --mode account"),
            "tgtadm --op new --user alice --password ******** --mode account"
        );
        assert_eq!(
            redact_text("mtask user=alice,password=Sup3r,S3cret x"),
            "mtask user=alice,password=********,S3cret x"
        );
    }

    #[test]
    fn config_lines_are_masked() {
        let conf = "<target iqn.a>\n\tincominguser alice Sup3rS3cretPw\n\
                    \tOutgoingUser bob 0therS3cret\n</target>\n\
                    incomingdiscoveryuser carol Thr3eS3cret\n";
        let r = redact_text(conf);
        for s in ["Sup3rS3cretPw", "0therS3cret", "Thr3eS3cret"] {
            assert!(!r.contains(s), "{s} in {r}");
        }
        assert!(r.contains("incominguser alice ********\n"), "{r}");
        assert!(r.contains("OutgoingUser bob ********\n"), "{r}");
        // A parse error never quotes the secret word.
        let err = crate::config::parse(
            "<target iqn.a>\nincominguser alice Sup3rS3cretPw extra\n</target>\n",
            "targets.conf",
            &mut |_| Ok(Vec::new()),
        )
        .unwrap_err()
        .to_string();
        assert!(!err.contains("Sup3rS3cretPw"), "{err}");
        assert!(err.contains("'incominguser'"), "{err}");
    }

    #[test]
    fn response_without_secrets() {
        let r = Response::show(
            "\tincominguser alice Sup3rS3cretPw\n".into(),
            json!({"targets": [{"incoming": [{"user": "alice", "password": "Sup3rS3cretPw"}]}],
                   "discovery_outgoing": {"user": "d", "password": "D1scS3cretPw"}}),
        );
        let hidden = r.clone().without_secrets();
        let text = serde_json::to_string(&hidden).unwrap();
        assert!(
            !text.contains("Sup3rS3cretPw") && !text.contains("D1scS3cretPw"),
            "{text}"
        );
        assert_eq!(
            hidden.data.unwrap()["targets"][0]["incoming"][0]["password"],
            HIDDEN_PASSWORD
        );
        assert_eq!(hidden.output.unwrap(), "\tincominguser alice ********\n");
    }
}

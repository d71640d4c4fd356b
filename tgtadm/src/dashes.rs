//! Command lines copied from web pages: typography turns `--lld` into `–lld` (en
//! dash) or `—lld` (em dash), and sometimes glues the value on (`–lldiscsi`).
//!
//! [`normalize`] rewrites such words into what the author meant when only one
//! reading exists, with a warning saying what it understood; when several readings
//! exist it refuses and prints the command line with everything else corrected, so
//! the user fixes only the ambiguous word. Words with plain ASCII dashes are never
//! touched: getopt handles them exactly as tgt's tgtadm does.

use crate::cli::{Exit, EXIT_EINVAL};
use crate::getopt::Spec;

/// Dash-like characters that stand for `--` (or `-`) in copied text.
const DASHES: [char; 6] = ['–', '—', '−', '‒', '―', '﹣'];

/// What one word became.
enum Reading {
    /// The same word (no typographic dash).
    Same,
    /// One reading: the words to use instead.
    Sure(Vec<String>),
    /// Several (or no) readings: what could be meant, for the message.
    Unsure(Vec<String>),
}

fn read_word(word: &str, spec: Spec) -> Reading {
    let body = word.trim_start_matches(|c| DASHES.contains(&c) || c == '-');
    if !word.starts_with(DASHES) || body.is_empty() {
        return Reading::Same;
    }
    let (name, inline) = match body.split_once('=') {
        Some((n, v)) => (n, Some(v)),
        None => (body, None),
    };
    let with_value = |opt: &str| {
        let mut v = vec![format!("--{opt}")];
        v.extend(inline.map(String::from));
        v
    };
    if let Some(o) = spec.long.iter().find(|o| o.name == name) {
        return Reading::Sure(with_value(o.name));
    }
    // `–lldiscsi`: a long option that takes a value, with the value glued on.
    let glued: Vec<_> = spec
        .long
        .iter()
        .filter(|o| o.has_arg && inline.is_none() && name.len() > o.name.len())
        .filter(|o| name.starts_with(o.name))
        .collect();
    let prefixed: Vec<_> = spec
        .long
        .iter()
        .filter(|o| o.name.starts_with(name))
        .collect();
    match (glued.as_slice(), prefixed.as_slice()) {
        ([o], []) => {
            let value = &name[o.name.len()..];
            Reading::Sure(vec![format!("--{}", o.name), value.to_string()])
        }
        ([], [o]) => Reading::Sure(with_value(o.name)),
        // A lone letter after one dash: the short option (`–m target`).
        ([], _) if name.chars().count() == 1 && short_exists(spec, name) && prefixed.len() > 1 => {
            let mut choices = vec![format!("-{name}")];
            choices.extend(prefixed.iter().map(|o| format!("--{}", o.name)));
            Reading::Unsure(choices)
        }
        ([], []) if name.chars().count() == 1 && short_exists(spec, name) => {
            Reading::Sure(vec![format!("-{name}")])
        }
        _ => {
            let mut choices: Vec<String> = glued
                .iter()
                .map(|o| format!("--{} {}", o.name, &name[o.name.len()..]))
                .collect();
            choices.extend(prefixed.iter().map(|o| format!("--{}", o.name)));
            Reading::Unsure(choices)
        }
    }
}

fn short_exists(spec: Spec, name: &str) -> bool {
    name != ":" && spec.short.contains(name)
}

/// Rewrite typographic dashes; returns the words to parse and the warnings to print.
pub(crate) fn normalize(args: &[String], spec: Spec) -> Result<(Vec<String>, Vec<String>), Exit> {
    let mut out = Vec::new();
    let mut warnings = Vec::new();
    let mut unsure = Vec::new();
    let mut shown = Vec::new();
    for word in args {
        match read_word(word, spec) {
            Reading::Same => {
                out.push(word.clone());
                shown.push(word.clone());
            }
            Reading::Sure(words) => {
                warnings.push(format!(
                    "tgtadm: warning: read '{word}' as '{}' (a typographic dash in a copied command?)",
                    words.join(" ")
                ));
                shown.push(words.join(" "));
                out.extend(words);
            }
            Reading::Unsure(choices) => {
                shown.push(format!("<{word}?>"));
                unsure.push((word.clone(), choices));
            }
        }
    }
    if unsure.is_empty() {
        return Ok((out, warnings));
    }
    let mut stderr = String::new();
    for (word, choices) in &unsure {
        if choices.is_empty() {
            stderr.push_str(&format!(
                "tgtadm: cannot read '{word}': no option matches\n"
            ));
        } else {
            stderr.push_str(&format!(
                "tgtadm: cannot read '{word}': it could be {}\n",
                choices.join(" or ")
            ));
        }
    }
    stderr.push_str(&format!(
        "tgtadm: corrected command: tgtadm {}\n",
        shown.join(" ")
    ));
    Err(Exit {
        stdout: String::new(),
        stderr,
        code: EXIT_EINVAL,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(line: &str) -> Result<(String, usize), String> {
        let args: Vec<String> = line.split(' ').map(String::from).collect();
        normalize(&args, crate::cli::SPEC)
            .map(|(words, warnings)| (words.join(" "), warnings.len()))
            .map_err(|e| e.stderr)
    }

    #[test]
    fn dashes_and_glued_words() {
        assert_eq!(
            run("–lld iscsi —mode target --op show"),
            Ok(("--lld iscsi --mode target --op show".into(), 2))
        );
        assert_eq!(
            run("–lldiscsi –mode target –op new –tid1 –targetname=iqn.a"),
            Ok((
                "--lld iscsi --mode target --op new --tid 1 --targetname iqn.a".into(),
                5
            ))
        );
        // `–m` is both `-m` and a unique prefix of `--mode`: the same option.
        assert_eq!(run("–m target"), Ok(("--mode target".into(), 1)));
        assert_eq!(run("–backing /x"), Ok(("--backing-store /x".into(), 1)));
        assert_eq!(
            run("--mode target -t 1"),
            Ok(("--mode target -t 1".into(), 0))
        );
    }

    #[test]
    fn ambiguous_words_show_the_corrected_command() {
        let e = run("–lld iscsi –mode target –t 1").unwrap_err();
        assert_eq!(
            e,
            "tgtadm: cannot read '–t': it could be -t or --tid or --targetname\n\
             tgtadm: corrected command: tgtadm --lld iscsi --mode target <–t?> 1\n"
        );
        let e = run("–bogus").unwrap_err();
        assert!(
            e.starts_with("tgtadm: cannot read '–bogus': no option matches\n"),
            "{e}"
        );
    }
}

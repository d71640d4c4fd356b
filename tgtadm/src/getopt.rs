//! A small GNU `getopt_long` work-alike, so `tgtadm` accepts exactly what tgt's
//! `tgtadm` accepts and fails with the same words.
//!
//! What GNU getopt does and scripts may rely on:
//! - options and operands may be mixed; operands are collected (permutation), and
//!   everything after `--` is an operand;
//! - `--name=value` and `--name value`; an unambiguous prefix of a long name works
//!   (`--targ` is `--targetname`);
//! - `-tVALUE`, `-t VALUE` and bundled flags (`-dh`); an option's argument is taken
//!   from the next word even when it starts with `-`.
//!
//! The messages are glibc's, prefixed with the program name.

/// One long option: its name, whether it takes an argument, and the short letter it
/// stands for (tgt's `struct option` `val`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct LongOpt {
    pub(crate) name: &'static str,
    pub(crate) has_arg: bool,
    pub(crate) key: char,
}

/// The option tables.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Spec {
    /// getopt's short option string: a letter, then `:` if it takes an argument.
    pub(crate) short: &'static str,
    pub(crate) long: &'static [LongOpt],
}

/// One parsed option: its key letter and argument.
pub(crate) type Parsed = (char, Option<String>);

/// Iterates options in command-line order; operands are kept in [`GetOpt::operands`].
pub(crate) struct GetOpt<'a> {
    spec: Spec,
    prog: &'a str,
    args: &'a [String],
    /// Index of the next word to look at.
    next: usize,
    /// Position inside a bundle of short options (`-dh`), 0 when none.
    in_bundle: usize,
    operands: Vec<String>,
}

impl<'a> GetOpt<'a> {
    /// Parse `args` (without the program name).
    pub(crate) fn new(spec: Spec, prog: &'a str, args: &'a [String]) -> Self {
        GetOpt {
            spec,
            prog,
            args,
            next: 0,
            in_bundle: 0,
            operands: Vec::new(),
        }
    }

    /// Words that were not options, in order; valid once the iterator is exhausted.
    pub(crate) fn operands(&self) -> &[String] {
        &self.operands
    }

    fn short_takes_arg(&self, c: char) -> Option<bool> {
        let s = self.spec.short;
        let i = s.find(c).filter(|_| c != ':')?;
        Some(s[i + c.len_utf8()..].starts_with(':'))
    }

    fn take_next_word(&mut self) -> Option<String> {
        let word = self.args.get(self.next).cloned();
        if word.is_some() {
            self.next += 1;
        }
        word
    }

    fn long(&mut self, body: &str) -> Result<Parsed, String> {
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        let prog = self.prog;
        let opt = match self.spec.long.iter().find(|o| o.name == name) {
            Some(o) => *o,
            None => {
                let matches: Vec<&LongOpt> = self
                    .spec
                    .long
                    .iter()
                    .filter(|o| o.name.starts_with(name))
                    .collect();
                match matches.as_slice() {
                    [one] => **one,
                    [] => return Err(format!("{prog}: unrecognized option '--{body}'")),
                    many => {
                        let names: Vec<String> =
                            many.iter().map(|o| format!("'--{}'", o.name)).collect();
                        return Err(format!(
                            "{prog}: option '--{name}' is ambiguous; possibilities: {}",
                            names.join(" ")
                        ));
                    }
                }
            }
        };
        match (opt.has_arg, inline) {
            (false, Some(_)) => Err(format!(
                "{prog}: option '--{}' doesn't allow an argument",
                opt.name
            )),
            (false, None) => Ok((opt.key, None)),
            (true, Some(v)) => Ok((opt.key, Some(v))),
            (true, None) => match self.take_next_word() {
                Some(v) => Ok((opt.key, Some(v))),
                None => Err(format!(
                    "{prog}: option '--{}' requires an argument",
                    opt.name
                )),
            },
        }
    }

    fn short(&mut self) -> Result<Parsed, String> {
        let args = self.args;
        let word = &args[self.next - 1];
        let rest = &word[self.in_bundle..];
        let c = rest
            .chars()
            .next()
            .expect("in_bundle points inside the word");
        let after = &rest[c.len_utf8()..];
        let prog = self.prog;
        let Some(takes_arg) = self.short_takes_arg(c) else {
            self.advance_bundle(after.is_empty(), c);
            return Err(format!("{prog}: invalid option -- '{c}'"));
        };
        if !takes_arg {
            self.advance_bundle(after.is_empty(), c);
            return Ok((c, None));
        }
        self.in_bundle = 0;
        if !after.is_empty() {
            return Ok((c, Some(after.to_string())));
        }
        match self.take_next_word() {
            Some(v) => Ok((c, Some(v))),
            None => Err(format!("{prog}: option requires an argument -- '{c}'")),
        }
    }

    fn advance_bundle(&mut self, word_done: bool, c: char) {
        if word_done {
            self.in_bundle = 0;
        } else {
            self.in_bundle += c.len_utf8();
        }
    }
}

impl Iterator for GetOpt<'_> {
    /// An option, or glibc's message for a bad one.
    type Item = Result<Parsed, String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.in_bundle > 0 {
            return Some(self.short());
        }
        loop {
            let word = self.args.get(self.next)?.clone();
            self.next += 1;
            if word == "--" {
                self.operands.extend(self.args[self.next..].iter().cloned());
                self.next = self.args.len();
                return None;
            }
            if let Some(body) = word.strip_prefix("--") {
                return Some(self.long(body));
            }
            if word.len() > 1 && word.starts_with('-') {
                self.in_bundle = 1;
                return Some(self.short());
            }
            self.operands.push(word);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG: &[LongOpt] = &[
        LongOpt {
            name: "tid",
            has_arg: true,
            key: 't',
        },
        LongOpt {
            name: "targetname",
            has_arg: true,
            key: 'T',
        },
        LongOpt {
            name: "force",
            has_arg: false,
            key: 'F',
        },
        LongOpt {
            name: "help",
            has_arg: false,
            key: 'h',
        },
    ];
    const SPEC: Spec = Spec {
        short: "dht:T:F:",
        long: LONG,
    };

    fn run(words: &[&str]) -> (Vec<Result<Parsed, String>>, Vec<String>) {
        let args: Vec<String> = words.iter().map(|s| s.to_string()).collect();
        let mut g = GetOpt::new(SPEC, "tgtadm", &args);
        let got: Vec<_> = g.by_ref().collect();
        (got, g.operands().to_vec())
    }

    #[test]
    fn forms_of_arguments() {
        let (got, ops) = run(&[
            "--tid=1", "-t2", "-t", "-3", "--targ", "x", "op", "-dh", "--force",
        ]);
        let want: Vec<Result<Parsed, String>> = vec![
            Ok(('t', Some("1".into()))),
            Ok(('t', Some("2".into()))),
            Ok(('t', Some("-3".into()))),
            Ok(('T', Some("x".into()))),
            Ok(('d', None)),
            Ok(('h', None)),
            Ok(('F', None)),
        ];
        assert_eq!(got, want);
        assert_eq!(ops, vec!["op".to_string()]);
    }

    #[test]
    fn glibc_messages() {
        let (got, _) = run(&["--nope", "-x", "--t", "--force=1", "--tid"]);
        assert_eq!(
            got,
            vec![
                Err("tgtadm: unrecognized option '--nope'".into()),
                Err("tgtadm: invalid option -- 'x'".into()),
                Err(
                    "tgtadm: option '--t' is ambiguous; possibilities: '--tid' '--targetname'"
                        .into()
                ),
                Err("tgtadm: option '--force' doesn't allow an argument".into()),
                Err("tgtadm: option '--tid' requires an argument".into()),
            ]
        );
        let (got, _) = run(&["-t"]);
        assert_eq!(
            got,
            vec![Err("tgtadm: option requires an argument -- 't'".into())]
        );
    }

    #[test]
    fn double_dash_ends_options() {
        let (got, ops) = run(&["-d", "--", "-t", "1"]);
        assert_eq!(got, vec![Ok(('d', None))]);
        assert_eq!(ops, vec!["-t".to_string(), "1".to_string()]);
    }
}

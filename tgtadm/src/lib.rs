//! `tgtadm`: tgt's admin command line, for tgtd-mio and tgtd-tokio.
//!
//! Same options, same checks, same messages and exit statuses as tgt's `tgtadm`
//! (`usr/tgtadm.c`), so scripts written for tgt keep working. The request itself
//! travels as a typed value ([`target_core::mgmt::wire`]) instead of tgt's C struct.

mod admin;
mod bus;
mod cli;
mod client;
mod dashes;
mod getopt;
mod number;
pub mod tgtimg;
mod usage;

use std::io::Write;
use std::process::ExitCode;

/// Run one command line; returns the exit status.
pub fn run(args: &[String], out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let mut json = false;
    let result = cli::parse(args).and_then(|inv| {
        for w in &inv.warnings {
            let _ = writeln!(err, "{w}");
        }
        json = inv.json;
        let path = client::socket_path(&inv);
        client::send(&path, &inv.request)
    });
    finish(result, json, out, err)
}

/// Print an answer (or a refusal) and give the exit status.
fn finish(
    result: Result<target_core::mgmt::Response, cli::Exit>,
    json: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    // Write failures (a closed pipe) leave nothing better to do than exit.
    match result {
        Ok(resp) => {
            match (json, resp.data, resp.output) {
                (true, Some(data), _) => {
                    let text = serde_json::to_string_pretty(&data).unwrap_or_default();
                    let _ = writeln!(out, "{text}");
                }
                (_, _, Some(text)) => {
                    let _ = out.write_all(text.as_bytes());
                }
                _ => {}
            }
            0
        }
        Err(exit) => {
            let _ = out.write_all(exit.stdout.as_bytes());
            let _ = err.write_all(exit.stderr.as_bytes());
            exit.code
        }
    }
}

/// Run `tgtadm` (or, with `admin`, `tgt-admin`) on the process's arguments.
pub fn main_with(admin: bool) -> ExitCode {
    // tgt takes bytes; a non-UTF-8 word can only be a path or name, kept lossily.
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    // Packaging: `--generate-man DIR` writes the man page (not a tgt option).
    if let [flag, dir] = args.as_slice() {
        if flag == "--generate-man" {
            let (name, page) = man_page(admin);
            return write_man_page(name, dir, &page);
        }
    }
    let run = if admin { admin::run } else { run };
    let code = run(
        &args,
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
    );
    let _ = std::io::stdout().flush();
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

/// The man page (section 8) of `tgtadm` or, with `admin`, `tgt-admin`: its name and
/// roff text, made from the same text as `--help`.
pub fn man_page(admin: bool) -> (&'static str, String) {
    let (name, what, help) = if admin {
        (
            "tgt-admin",
            "load targets.conf into a running tgtd",
            admin::HELP.to_string(),
        )
    } else {
        (
            "tgtadm",
            "administer a running tgtd (tgt-compatible syntax)",
            usage::text(),
        )
    };
    (name, help_man_page(name, what, &help))
}

/// Packaging: write `page` as DIR/NAME.8 and print its path.
pub fn write_man_page(name: &str, dir: &str, page: &str) -> ExitCode {
    let path = std::path::Path::new(dir).join(format!("{name}.8"));
    match std::fs::create_dir_all(dir).and_then(|()| std::fs::write(&path, page)) {
        Ok(()) => {
            println!("{}", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{name}: cannot write {}: {e}", path.display());
            ExitCode::FAILURE
        }
    }
}

/// A section 8 man page whose description is a program's `--help` text, verbatim:
/// tgt's tools document themselves in their usage text, and one text for both
/// keeps the page from drifting.
pub fn help_man_page(name: &str, what: &str, help: &str) -> String {
    let mut out = format!(
        ".TH {name} 8 \"\" \"tgtd-rs {}\"\n.SH NAME\n{} \\- {what}\n\
         .SH DESCRIPTION\nThe text of \\fB{} \\-\\-help\\fR:\n.PP\n.nf\n",
        env!("CARGO_PKG_VERSION"),
        name.replace('-', "\\-"),
        name.replace('-', "\\-"),
    );
    for line in help.lines() {
        let line = line.replace('\\', "\\e").replace('-', "\\-");
        if line.starts_with(['.', '\'']) {
            out.push_str("\\&");
        }
        out.push_str(&line);
        out.push('\n');
    }
    out.push_str(".fi\n.SH SEE ALSO\ntgtd(8)\n");
    out
}

//! `tgtimg`: tgt's image file utility (tape images in tgt's format).

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = tgtadm::tgtimg::run(&args, &mut std::io::stdout(), &mut std::io::stderr());
    std::process::ExitCode::from(u8::try_from(code).unwrap_or(1))
}

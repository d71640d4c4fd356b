//! `tgtimg`: tgt's image file utility (tape images in tgt's format).

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Packaging: `--generate-man DIR` writes the man page (not a tgt option).
    if let [flag, dir] = args.as_slice() {
        if flag == "--generate-man" {
            return tgtadm::write_man_page("tgtimg", dir, &tgtadm::tgtimg::man_page());
        }
    }
    let code = tgtadm::tgtimg::run(&args, &mut std::io::stdout(), &mut std::io::stderr());
    std::process::ExitCode::from(u8::try_from(code).unwrap_or(1))
}

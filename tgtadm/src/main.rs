//! `tgtadm`: tgt's admin command line, for tgtd-mio and tgtd-tokio.

fn main() -> std::process::ExitCode {
    tgtadm::main_with(false)
}

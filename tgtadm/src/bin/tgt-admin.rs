//! `tgt-admin`: tgt's targets.conf tool (`--execute`, `--update`, `--dump`, `--show`).

fn main() -> std::process::ExitCode {
    tgtadm::main_with(true)
}

//! Sans-IO SCSI stream device (SSC-3): a virtual tape drive over a tape image in tgt's
//! format, as tgt's `--device-type tape` serves it.
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

pub mod image;

//! Errors from opening a backing store or starting the worker pool.
//!
//! These are setup errors, reported to the storage admin (through `tgtadm`), so each
//! message names the store and says what to fix. Errors of individual operations are
//! [`IoErrorKind`](scsi_sbc::IoErrorKind) values instead: they become SCSI sense data.

use std::io;

/// Why a backing store could not be opened (or the worker pool could not start).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// The OS refused to open the path (missing file, permissions, ...): the LUN cannot
    /// be created until the path is fixed.
    #[error("cannot open backing store {path}: {source}")]
    Open {
        /// The backing-store path as given.
        path: String,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// The path exists but is a directory, socket, character device, ...: only regular
    /// files and block devices can back a disk LUN.
    #[error("backing store {path} is neither a regular file nor a block device")]
    NotAFileOrDevice {
        /// The backing-store path as given.
        path: String,
    },
    /// The size of an opened store could not be read (a block device that refuses to
    /// report its size): without a size there is no READ CAPACITY answer.
    #[error("cannot determine the size of backing store {path}: {source}")]
    Size {
        /// The backing-store path as given.
        path: String,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// The store holds 0 bytes; a LUN needs at least one block, and READ CAPACITY
    /// cannot describe an empty disk.
    #[error(
        "backing store {path} is empty (0 bytes); grow it first, e.g. `truncate -s 1G {path}`"
    )]
    Empty {
        /// The backing-store path as given.
        path: String,
    },
    /// A size (the "path" of a `memory` store) did not parse, or was zero.
    #[error(
        "invalid size '{text}': expected a positive number of bytes with an optional \
         K, M, G or T suffix (powers of 1024), e.g. 512M or 1G"
    )]
    BadSize {
        /// The text as given.
        text: String,
    },
    /// The file is not a tape image in tgt's format (`--device-type tape`): make one
    /// with `tgtimg --op new --device-type tape`.
    #[error("{path} is not a tape image ({why}); make one with `tgtimg --op new --device-type tape --barcode B --size MB --type data --file {path}`")]
    NotATape {
        /// The backing-store path as given.
        path: String,
        /// What is wrong with it.
        why: String,
    },
    /// `--bsoflags` held something other than `sync`, `direct` or both joined by `:`.
    #[error("unsupported --bsoflags '{text}': expected sync, direct or sync:direct")]
    BadOflags {
        /// The flags as given.
        text: String,
    },
    /// `--bsopts` held an option the store type does not take, or a bad value.
    #[error("bad --bsopts '{text}': {why}")]
    BadOptions {
        /// The options as given.
        text: String,
        /// What is wrong with them.
        why: String,
    },
    /// `--bsoflags direct` on a medium that cannot do O_DIRECT I/O of the LU's block
    /// size (a file system without O_DIRECT such as tmpfs, or a device whose logical
    /// sectors are larger than the LU's blocks).
    #[error(
        "backing store {path} cannot do O_DIRECT I/O of {block_size}-byte blocks ({source}); \
         drop --bsoflags direct or use a larger --blocksize"
    )]
    DirectUnsupported {
        /// The backing-store path as given.
        path: String,
        /// The LU's logical block size.
        block_size: u32,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// A block device is already held exclusively (mounted, in a RAID or LVM volume,
    /// or the backing store of another LU): two owners would corrupt it.
    #[error("backing store {path} is in use (mounted, or held by another LU or program)")]
    Busy {
        /// The backing-store path as given.
        path: String,
    },
    /// The rules of a `fault` store (`--bsopts rules=...`) did not parse.
    #[error("bad fault rules '{text}': {source}")]
    FaultRules {
        /// The rules as given.
        text: String,
        /// Which rule is wrong and why.
        #[source]
        source: crate::fault::RuleError,
    },
    /// An rbd backing store was not named `[POOL/]IMAGE[@SNAP]`.
    #[error("bad rbd backing store '{path}': expected [POOL/]IMAGE[@SNAP]")]
    BadImagePath {
        /// The backing-store path as given.
        path: String,
    },
    /// librados or librbd cannot be loaded: `--bstype rbd` needs them at run time.
    #[error("the rbd backing store is not available: {why}")]
    RbdUnavailable {
        /// Which library is missing and the package that provides it.
        why: String,
    },
    /// The Ceph cluster could not be reached (down, wrong configuration or user).
    #[error("cannot {step} Ceph cluster '{cluster}' as {name} with {conf}: {why}")]
    RbdCluster {
        /// The cluster name.
        cluster: String,
        /// The client name.
        name: String,
        /// The configuration file.
        conf: String,
        /// What failed: "read the configuration of", "connect to", ...
        step: &'static str,
        /// What librados said.
        why: String,
    },
    /// The pool, image or snapshot does not exist.
    #[error("rbd {what} does not exist")]
    RbdMissing {
        /// Which (`pool 'p'`, `image 'p/i'`, ...).
        what: String,
    },
    /// The image exists but could not be opened or read.
    #[error("cannot open rbd image {path}: {why}")]
    RbdImage {
        /// The backing-store path as given.
        path: String,
        /// What librbd said.
        why: String,
    },
    /// `--bstype` named a backing-store type this target does not implement.
    #[error("unknown backing store type '{name}': expected rdwr, aio, memory, null, fault or rbd")]
    UnknownBsType {
        /// The type name as given.
        name: String,
    },
    /// The OS refused to start an I/O worker thread (thread or memory limits); without
    /// workers no I/O can complete.
    #[error("cannot start I/O worker thread: {source}")]
    Spawn {
        /// What the OS said.
        #[source]
        source: io::Error,
    },
}

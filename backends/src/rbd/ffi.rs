//! The few librados and librbd calls the rbd store makes, loaded at run time.
//!
//! Nothing here is linked: `librados.so.2` and `librbd.so.1` are opened with
//! `dlopen` (through `libloading`) the first time an rbd LU is created, so the
//! daemon builds and runs on a machine without Ceph, and only `--bstype rbd` needs
//! the libraries (a missing one is [`LoadError`], naming the Debian package).
//!
//! The C prototypes are those of `rados/librados.h` and `rbd/librbd.h` (stable C
//! ABI since Luminous; `rbd_aio_compare_and_write` since Mimic). Every handle gets
//! an owning Rust type whose `Drop` releases it, and the asynchronous calls take
//! their buffers and their completion closure by value in an [`Aio`] that lives on
//! the heap until librbd's callback has run: librbd can only ever write into, or
//! call back, memory that the callback itself frees.
#![allow(unsafe_code)]

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};

use bytes::{Bytes, BytesMut};
use libloading::Library;

type RadosT = *mut c_void;
type IoctxT = *mut c_void;
type ImageT = *mut c_void;
type CompletionT = *mut c_void;
type AioCallback = unsafe extern "C" fn(CompletionT, *mut c_void);
type UpdateCallback = unsafe extern "C" fn(*mut c_void);
type WriteOpT = *mut c_void;
type WatchCallback = unsafe extern "C" fn(*mut c_void, u64, u64, u64, *mut c_void, usize);
type WatchErrCallback = unsafe extern "C" fn(*mut c_void, u64, c_int);

/// The entry points, copied out of the libraries (which are never unloaded).
struct Api {
    rados_create2: unsafe extern "C" fn(*mut RadosT, *const c_char, *const c_char, u64) -> c_int,
    rados_conf_read_file: unsafe extern "C" fn(RadosT, *const c_char) -> c_int,
    rados_conf_set: unsafe extern "C" fn(RadosT, *const c_char, *const c_char) -> c_int,
    rados_connect: unsafe extern "C" fn(RadosT) -> c_int,
    rados_shutdown: unsafe extern "C" fn(RadosT),
    rados_ioctx_create: unsafe extern "C" fn(RadosT, *const c_char, *mut IoctxT) -> c_int,
    rados_ioctx_destroy: unsafe extern "C" fn(IoctxT),
    rados_read: unsafe extern "C" fn(IoctxT, *const c_char, *mut c_char, usize, u64) -> c_int,
    rados_get_last_version: unsafe extern "C" fn(IoctxT) -> u64,
    rados_create_write_op: unsafe extern "C" fn() -> WriteOpT,
    rados_release_write_op: unsafe extern "C" fn(WriteOpT),
    rados_write_op_assert_version: unsafe extern "C" fn(WriteOpT, u64),
    rados_write_op_create: unsafe extern "C" fn(WriteOpT, c_int, *const c_char),
    rados_write_op_write_full: unsafe extern "C" fn(WriteOpT, *const c_char, usize),
    rados_write_op_operate:
        unsafe extern "C" fn(WriteOpT, IoctxT, *const c_char, *mut libc::time_t, c_int) -> c_int,
    rados_watch3: unsafe extern "C" fn(
        IoctxT,
        *const c_char,
        *mut u64,
        WatchCallback,
        WatchErrCallback,
        u32,
        *mut c_void,
    ) -> c_int,
    rados_unwatch2: unsafe extern "C" fn(IoctxT, u64) -> c_int,
    rados_watch_flush: unsafe extern "C" fn(RadosT) -> c_int,
    rados_notify2: unsafe extern "C" fn(
        IoctxT,
        *const c_char,
        *const c_char,
        c_int,
        u64,
        *mut *mut c_char,
        *mut usize,
    ) -> c_int,
    rados_notify_ack:
        unsafe extern "C" fn(IoctxT, *const c_char, u64, u64, *const c_char, c_int) -> c_int,
    rados_buffer_free: unsafe extern "C" fn(*mut c_char),
    rados_lock_exclusive: unsafe extern "C" fn(
        IoctxT,
        *const c_char,
        *const c_char,
        *const c_char,
        *const c_char,
        *mut libc::timeval,
        u8,
    ) -> c_int,
    rados_unlock:
        unsafe extern "C" fn(IoctxT, *const c_char, *const c_char, *const c_char) -> c_int,
    rbd_open: unsafe extern "C" fn(IoctxT, *const c_char, *mut ImageT, *const c_char) -> c_int,
    rbd_open_read_only:
        unsafe extern "C" fn(IoctxT, *const c_char, *mut ImageT, *const c_char) -> c_int,
    rbd_close: unsafe extern "C" fn(ImageT) -> c_int,
    rbd_get_size: unsafe extern "C" fn(ImageT, *mut u64) -> c_int,
    rbd_get_id: unsafe extern "C" fn(ImageT, *mut c_char, usize) -> c_int,
    rbd_aio_create_completion:
        unsafe extern "C" fn(*mut c_void, AioCallback, *mut CompletionT) -> c_int,
    rbd_aio_get_return_value: unsafe extern "C" fn(CompletionT) -> isize,
    rbd_aio_release: unsafe extern "C" fn(CompletionT),
    rbd_aio_read: unsafe extern "C" fn(ImageT, u64, usize, *mut c_char, CompletionT) -> c_int,
    rbd_aio_write: unsafe extern "C" fn(ImageT, u64, usize, *const c_char, CompletionT) -> c_int,
    rbd_aio_flush: unsafe extern "C" fn(ImageT, CompletionT) -> c_int,
    rbd_aio_discard: unsafe extern "C" fn(ImageT, u64, u64, CompletionT) -> c_int,
    rbd_aio_writesame:
        unsafe extern "C" fn(ImageT, u64, usize, *const c_char, usize, CompletionT, c_int) -> c_int,
    rbd_aio_compare_and_write: unsafe extern "C" fn(
        ImageT,
        u64,
        usize,
        *const c_char,
        *const c_char,
        CompletionT,
        *mut u64,
        c_int,
    ) -> c_int,
    rbd_update_watch: unsafe extern "C" fn(ImageT, *mut u64, UpdateCallback, *mut c_void) -> c_int,
    rbd_update_unwatch: unsafe extern "C" fn(ImageT, u64) -> c_int,
    rados_getaddrs: unsafe extern "C" fn(RadosT, *mut *mut c_char) -> c_int,
    rbd_get_features: unsafe extern "C" fn(ImageT, *mut u64) -> c_int,
    rbd_lock_get_owners:
        unsafe extern "C" fn(ImageT, *mut c_int, *mut *mut c_char, *mut usize) -> c_int,
    rbd_lock_get_owners_cleanup: unsafe extern "C" fn(*mut *mut c_char, usize),
    rbd_lock_break: unsafe extern "C" fn(ImageT, c_int, *const c_char) -> c_int,
    /// Keeps the code the pointers above point into mapped (never dropped: the
    /// static holding `Api` lives until the process exits).
    _libs: [Library; 2],
}

/// Why librados or librbd could not be loaded.
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot load {library} ({why}); install the Debian package {package}")]
pub struct LoadError {
    /// The shared object that failed (`librados.so.2`, `librbd.so.1`).
    pub library: String,
    /// The package that provides it (`librados2`, `librbd1`).
    pub package: &'static str,
    /// What the dynamic loader said (or the missing symbol).
    pub why: String,
}

static API: OnceLock<Result<Api, LoadError>> = OnceLock::new();

/// Load the libraries once; later calls return the same answer.
fn api() -> Result<&'static Api, LoadError> {
    API.get_or_init(load).as_ref().map_err(Clone::clone)
}

/// Whether the libraries can be loaded (the first call loads them).
pub(crate) fn available() -> Result<(), LoadError> {
    api().map(|_| ())
}

fn open_lib(library: &str, package: &'static str) -> Result<Library, LoadError> {
    // SAFETY: loading runs the library's initialisers; librados and librbd are
    // ordinary C/C++ shared objects whose constructors only set up their own
    // globals. The name is the soname above (or the test override below).
    unsafe { Library::new(library) }.map_err(|e| LoadError {
        library: library.to_owned(),
        package,
        why: e.to_string(),
    })
}

fn load() -> Result<Api, LoadError> {
    const RADOS: (&str, &str) = ("librados.so.2", "librados2");
    const RBD: (&str, &str) = ("librbd.so.1", "librbd1");
    // `TGTD_LIBRBD` names another file to load as librbd: tests use it to see the
    // answer of a machine without Ceph's libraries.
    let rbd_name = std::env::var("TGTD_LIBRBD").unwrap_or_else(|_| RBD.0.to_owned());
    let rados = open_lib(RADOS.0, RADOS.1)?;
    let rbd = open_lib(&rbd_name, RBD.1)?;
    macro_rules! sym {
        ($lib:expr, $which:expr, $name:ident) => {{
            // SAFETY: the type given for each symbol is the C prototype of that
            // function in librados.h / librbd.h (see the module doc); the pointer is
            // copied out and stays valid because the library is kept in `Api`.
            let s = unsafe { $lib.get(concat!(stringify!($name), "\0").as_bytes()) };
            *s.map_err(|e: libloading::Error| LoadError {
                library: $which.0.to_owned(),
                package: $which.1,
                why: e.to_string(),
            })?
        }};
    }
    Ok(Api {
        rados_create2: sym!(rados, RADOS, rados_create2),
        rados_conf_read_file: sym!(rados, RADOS, rados_conf_read_file),
        rados_conf_set: sym!(rados, RADOS, rados_conf_set),
        rados_connect: sym!(rados, RADOS, rados_connect),
        rados_shutdown: sym!(rados, RADOS, rados_shutdown),
        rados_ioctx_create: sym!(rados, RADOS, rados_ioctx_create),
        rados_ioctx_destroy: sym!(rados, RADOS, rados_ioctx_destroy),
        rados_read: sym!(rados, RADOS, rados_read),
        rados_get_last_version: sym!(rados, RADOS, rados_get_last_version),
        rados_create_write_op: sym!(rados, RADOS, rados_create_write_op),
        rados_release_write_op: sym!(rados, RADOS, rados_release_write_op),
        rados_write_op_assert_version: sym!(rados, RADOS, rados_write_op_assert_version),
        rados_write_op_create: sym!(rados, RADOS, rados_write_op_create),
        rados_write_op_write_full: sym!(rados, RADOS, rados_write_op_write_full),
        rados_write_op_operate: sym!(rados, RADOS, rados_write_op_operate),
        rados_watch3: sym!(rados, RADOS, rados_watch3),
        rados_unwatch2: sym!(rados, RADOS, rados_unwatch2),
        rados_watch_flush: sym!(rados, RADOS, rados_watch_flush),
        rados_notify2: sym!(rados, RADOS, rados_notify2),
        rados_notify_ack: sym!(rados, RADOS, rados_notify_ack),
        rados_buffer_free: sym!(rados, RADOS, rados_buffer_free),
        rados_lock_exclusive: sym!(rados, RADOS, rados_lock_exclusive),
        rados_unlock: sym!(rados, RADOS, rados_unlock),
        rbd_open: sym!(rbd, RBD, rbd_open),
        rbd_open_read_only: sym!(rbd, RBD, rbd_open_read_only),
        rbd_close: sym!(rbd, RBD, rbd_close),
        rbd_get_size: sym!(rbd, RBD, rbd_get_size),
        rbd_get_id: sym!(rbd, RBD, rbd_get_id),
        rbd_aio_create_completion: sym!(rbd, RBD, rbd_aio_create_completion),
        rbd_aio_get_return_value: sym!(rbd, RBD, rbd_aio_get_return_value),
        rbd_aio_release: sym!(rbd, RBD, rbd_aio_release),
        rbd_aio_read: sym!(rbd, RBD, rbd_aio_read),
        rbd_aio_write: sym!(rbd, RBD, rbd_aio_write),
        rbd_aio_flush: sym!(rbd, RBD, rbd_aio_flush),
        rbd_aio_discard: sym!(rbd, RBD, rbd_aio_discard),
        rbd_aio_writesame: sym!(rbd, RBD, rbd_aio_writesame),
        rbd_aio_compare_and_write: sym!(rbd, RBD, rbd_aio_compare_and_write),
        rbd_update_watch: sym!(rbd, RBD, rbd_update_watch),
        rbd_update_unwatch: sym!(rbd, RBD, rbd_update_unwatch),
        rados_getaddrs: sym!(rados, RADOS, rados_getaddrs),
        rbd_get_features: sym!(rbd, RBD, rbd_get_features),
        rbd_lock_get_owners: sym!(rbd, RBD, rbd_lock_get_owners),
        rbd_lock_get_owners_cleanup: sym!(rbd, RBD, rbd_lock_get_owners_cleanup),
        rbd_lock_break: sym!(rbd, RBD, rbd_lock_break),
        _libs: [rados, rbd],
    })
}

/// A C string from Rust text; an interior NUL (never valid in Ceph names or paths)
/// is `-EINVAL`.
fn cstr(s: &str) -> Result<CString, i32> {
    CString::new(s).map_err(|_| -libc::EINVAL)
}

/// A connected cluster handle (`rados_t`), shut down on drop.
pub(crate) struct Cluster {
    api: &'static Api,
    handle: RadosT,
}

// SAFETY: librados handles are documented thread-safe; the pointer is only passed
// back to librados.
unsafe impl Send for Cluster {}
// SAFETY: as above; no method mutates Rust-side state.
unsafe impl Sync for Cluster {}

impl Cluster {
    /// Create a handle for `cluster` as user `name` (e.g. `client.admin`), read
    /// `conf`, apply `settings` (`option`, `value`) and connect. Errors are negative
    /// errno values, with the step that failed.
    pub(crate) fn connect(
        cluster: &str,
        name: &str,
        conf: &str,
        settings: &[(&str, &str)],
    ) -> Result<Cluster, (&'static str, i32)> {
        let api = api().map_err(|_| ("load", -libc::ENOENT))?;
        let (c_cluster, c_name, c_conf) = (
            cstr(cluster).map_err(|e| ("create a handle for", e))?,
            cstr(name).map_err(|e| ("create a handle for", e))?,
            cstr(conf).map_err(|e| ("read the configuration of", e))?,
        );
        let mut handle: RadosT = std::ptr::null_mut();
        // SAFETY: `handle` is a valid out-pointer; the strings are NUL-terminated and
        // live across the call (librados copies them).
        let r = unsafe { (api.rados_create2)(&mut handle, c_cluster.as_ptr(), c_name.as_ptr(), 0) };
        if r < 0 {
            return Err(("create a handle for", r));
        }
        // From here the handle is owned: dropping `me` shuts it down.
        let me = Cluster { api, handle };
        // SAFETY: a live handle and a NUL-terminated path.
        let r = unsafe { (api.rados_conf_read_file)(me.handle, c_conf.as_ptr()) };
        if r < 0 {
            return Err(("read the configuration of", r));
        }
        for (option, value) in settings {
            let (o, v) = (
                cstr(option).map_err(|e| ("set an option of", e))?,
                cstr(value).map_err(|e| ("set an option of", e))?,
            );
            // SAFETY: a live, not yet connected handle; NUL-terminated strings.
            let r = unsafe { (api.rados_conf_set)(me.handle, o.as_ptr(), v.as_ptr()) };
            if r < 0 {
                return Err(("set an option of", r));
            }
        }
        // SAFETY: a live handle, configured above. Bounded by client_mount_timeout.
        let r = unsafe { (api.rados_connect)(me.handle) };
        if r < 0 {
            return Err(("connect to", r));
        }
        Ok(me)
    }

    /// This client's addresses as the cluster knows it (`rados_getaddrs`), the
    /// text librbd names a lock owner by, e.g. `127.0.0.1:0/3512345` (or a
    /// bracketed list of them with `v1:`/`v2:` prefixes).
    pub(crate) fn addrs(&self) -> Result<String, i32> {
        let mut out: *mut c_char = std::ptr::null_mut();
        // SAFETY: a connected handle and a valid out-pointer.
        let r = unsafe { (self.api.rados_getaddrs)(self.handle, &mut out) };
        if r < 0 {
            return Err(r);
        }
        if out.is_null() {
            return Err(-libc::EINVAL);
        }
        // SAFETY: librados returned a NUL-terminated string it allocated with
        // `strdup`; it is read once and freed with `free`, as its header says.
        let text = unsafe {
            let text = CStr::from_ptr(out).to_string_lossy().into_owned();
            libc::free(out.cast());
            text
        };
        Ok(text)
    }

    /// An I/O context on `pool`.
    pub(crate) fn ioctx(&self, pool: &str) -> Result<IoCtx<'_>, i32> {
        let c_pool = cstr(pool)?;
        let mut io: IoctxT = std::ptr::null_mut();
        // SAFETY: a connected handle, a valid out-pointer, a NUL-terminated name.
        let r = unsafe { (self.api.rados_ioctx_create)(self.handle, c_pool.as_ptr(), &mut io) };
        if r < 0 {
            return Err(r);
        }
        Ok(IoCtx {
            cluster: self,
            handle: io,
        })
    }
}

impl Cluster {
    /// Open RADOS object `oid` of `pool` (created empty when missing) and watch it:
    /// `on_notify` is called with the payload of every notification on it, then the
    /// notification is acknowledged. The OSD drops the watch of a gateway it has not
    /// heard from for `watch_timeout_s` seconds (a crashed one), so notifications stop
    /// waiting for it. See [`SharedObject`].
    pub(crate) fn shared_object(
        &self,
        pool: &str,
        oid: &str,
        watch_timeout_s: u32,
        on_notify: OnNotify,
    ) -> Result<SharedObject, (&'static str, i32)> {
        let c_pool = cstr(pool).map_err(|e| ("open the pool of", e))?;
        let c_oid = cstr(oid).map_err(|e| ("name", e))?;
        let mut io: IoctxT = std::ptr::null_mut();
        // SAFETY: a connected handle, a valid out-pointer, a NUL-terminated name.
        let r = unsafe { (self.api.rados_ioctx_create)(self.handle, c_pool.as_ptr(), &mut io) };
        if r < 0 {
            return Err(("open the pool of", r));
        }
        let ctx = Box::into_raw(Box::new(WatchCtx {
            api: self.api,
            io,
            oid: c_oid.clone(),
            on_notify,
            lost: AtomicBool::new(false),
            ack: Mutex::new(Vec::new()),
        }));
        // From here `obj` owns the ioctx and the context: dropping it frees both.
        let obj = SharedObject {
            api: self.api,
            cluster: self.handle,
            io,
            oid: c_oid,
            ctx,
            timeout_s: watch_timeout_s,
            cookie: Mutex::new(None),
        };
        // Create it if missing (a watch needs an object); another gateway may win.
        match obj.operate(&[], None, true) {
            Ok(()) => {}
            Err(e) if e == -libc::EEXIST => {}
            Err(e) => return Err(("create", e)),
        }
        obj.rewatch().map_err(|e| ("watch", e))?;
        Ok(obj)
    }
}

/// What a [`SharedObject`]'s watch calls (on a librados thread) with a
/// notification's payload, before acknowledging it.
pub(crate) type OnNotify = Box<dyn Fn(&[u8]) + Send + Sync>;

struct WatchCtx {
    api: &'static Api,
    io: IoctxT,
    oid: CString,
    on_notify: OnNotify,
    /// Set by the error callback: the watch is gone and must be made again.
    lost: AtomicBool,
    /// What this watch answers every notification with (see
    /// [`SharedObject::set_ack`]).
    ack: Mutex<Vec<u8>>,
}

/// A small RADOS object several gateways read, replace conditionally and notify
/// each other about (the shared reservation state of an image). Owns its ioctx and
/// its watch; must be dropped before the [`Cluster`] it came from.
pub(crate) struct SharedObject {
    api: &'static Api,
    cluster: RadosT,
    io: IoctxT,
    oid: CString,
    /// The watch callbacks' context, allocated once, freed in `Drop` after the last
    /// watch is removed and its callbacks flushed.
    ctx: *mut WatchCtx,
    timeout_s: u32,
    /// The current watch.
    cookie: Mutex<Option<u64>>,
}

// SAFETY: librados ioctx handles may be used from any thread (the store serialises
// its read-modify-writes itself); the watch context is only freed in `Drop`.
unsafe impl Send for SharedObject {}
// SAFETY: as above.
unsafe impl Sync for SharedObject {}

impl SharedObject {
    fn ctx(&self) -> &WatchCtx {
        // SAFETY: allocated in `shared_object`, freed only in `Drop`.
        unsafe { &*self.ctx }
    }

    /// Whether the watch was lost (the OSD timed it out, the connection broke):
    /// notifications are not seen until [`SharedObject::rewatch`].
    pub(crate) fn watch_lost(&self) -> bool {
        self.ctx().lost.load(Ordering::Acquire)
    }

    /// Remove the watch, if any, and watch the object again.
    pub(crate) fn rewatch(&self) -> Result<(), i32> {
        let mut cookie = self.cookie.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(old) = cookie.take() {
            // SAFETY: a live ioctx and a watch registered on it (a lost watch is
            // still ours to remove); not called from a watch callback.
            unsafe { (self.api.rados_unwatch2)(self.io, old) };
        }
        self.ctx().lost.store(false, Ordering::Release);
        let mut new = 0u64;
        // SAFETY: a live ioctx and NUL-terminated name; `ctx` stays allocated until
        // `Drop` has removed the watch and flushed its callbacks.
        let r = unsafe {
            (self.api.rados_watch3)(
                self.io,
                self.oid.as_ptr(),
                &mut new,
                on_watch_notify,
                on_watch_error,
                self.timeout_s,
                self.ctx.cast(),
            )
        };
        if r < 0 {
            self.ctx().lost.store(true, Ordering::Release);
            return Err(r);
        }
        *cookie = Some(new);
        Ok(())
    }

    /// The whole object and its version (the object's, as RADOS counts writes).
    pub(crate) fn read(&self) -> Result<(Vec<u8>, u64), i32> {
        let mut len = 64 * 1024;
        loop {
            let mut buf = vec![0u8; len];
            // SAFETY: a live ioctx, a NUL-terminated name, `buf` has `len` writable
            // bytes.
            let r = unsafe {
                (self.api.rados_read)(self.io, self.oid.as_ptr(), buf.as_mut_ptr().cast(), len, 0)
            };
            if r < 0 {
                return Err(r);
            }
            let n = usize::try_from(r).unwrap_or(0);
            if n == len && len < 16 << 20 {
                len *= 4;
                continue;
            }
            buf.truncate(n);
            // SAFETY: a live ioctx; the version is that of the read just made (the
            // caller serialises the use of this ioctx for read-modify-writes).
            let v = unsafe { (self.api.rados_get_last_version)(self.io) };
            return Ok((buf, v));
        }
    }

    /// Replace the object with `data` if its version is still `version`
    /// (`-ERANGE`/`-EOVERFLOW` when it changed); `None`: create it with `data`
    /// unless it exists (`-EEXIST`).
    pub(crate) fn replace(&self, data: &[u8], version: Option<u64>) -> Result<(), i32> {
        match version {
            Some(v) => self.operate(data, Some(v), false),
            None => self.operate(data, None, true),
        }
    }

    fn operate(&self, data: &[u8], version: Option<u64>, create: bool) -> Result<(), i32> {
        // SAFETY: creating a write op has no precondition; it is released below.
        let op = unsafe { (self.api.rados_create_write_op)() };
        if op.is_null() {
            return Err(-libc::ENOMEM);
        }
        // SAFETY: a live op; `data` outlives `operate` (librados copies it into the
        // op when it is added); a live ioctx and a NUL-terminated name.
        let r = unsafe {
            if create {
                // LIBRADOS_CREATE_EXCLUSIVE = 1
                (self.api.rados_write_op_create)(op, 1, std::ptr::null());
            }
            if let Some(v) = version {
                (self.api.rados_write_op_assert_version)(op, v);
            }
            if !create || !data.is_empty() {
                (self.api.rados_write_op_write_full)(op, data.as_ptr().cast(), data.len());
            }
            let r = (self.api.rados_write_op_operate)(
                op,
                self.io,
                self.oid.as_ptr(),
                std::ptr::null_mut(),
                0,
            );
            (self.api.rados_release_write_op)(op);
            r
        };
        if r < 0 {
            Err(r)
        } else {
            Ok(())
        }
    }

    /// What this gateway's watch answers every notification with from now on (empty
    /// at first): the other gateways read it in [`SharedObject::survey`].
    pub(crate) fn set_ack(&self, payload: &[u8]) {
        let mut ack = self
            .ctx()
            .ack
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if *ack != payload {
            *ack = payload.to_vec();
        }
    }

    /// Send `payload` to every watcher of the object (this one included), wait up to
    /// `timeout_ms`, and answer what each watcher that acknowledged in time replied
    /// with. A watcher that did not (a gateway that crashed and whose watch the OSD
    /// has not yet dropped) is simply missing from the answer.
    pub(crate) fn survey(&self, payload: &[u8], timeout_ms: u64) -> Result<Vec<Vec<u8>>, i32> {
        let (r, reply) = self.notify_raw(payload, timeout_ms);
        if r < 0 && r != -libc::ETIMEDOUT {
            return Err(r);
        }
        match parse_notify_reply(&reply) {
            Some(acks) => Ok(acks.into_iter().map(|(_, _, p)| p).collect()),
            None => Err(-libc::EBADMSG),
        }
    }

    /// Take the advisory exclusive lock `name` on object `oid` of this object's pool
    /// (created empty if missing) as `cookie`, for at most `duration` (the OSD lets
    /// it go after that, so a gateway that dies holding it does not hold it for
    /// ever). `-EBUSY`: another holder has it.
    pub(crate) fn lock_exclusive(
        &self,
        oid: &str,
        name: &str,
        cookie: &str,
        duration: std::time::Duration,
    ) -> Result<(), i32> {
        let (c_oid, c_name, c_cookie) = (cstr(oid)?, cstr(name)?, cstr(cookie)?);
        let desc = c"tgtd COMPARE AND WRITE";
        let mut tv = libc::timeval {
            tv_sec: libc::time_t::try_from(duration.as_secs()).unwrap_or(libc::time_t::MAX),
            tv_usec: libc::suseconds_t::from(duration.subsec_micros() as i32),
        };
        // SAFETY: a live ioctx; NUL-terminated strings and `tv` outlive the call
        // (librados copies them into the op it waits for).
        let r = unsafe {
            (self.api.rados_lock_exclusive)(
                self.io,
                c_oid.as_ptr(),
                c_name.as_ptr(),
                c_cookie.as_ptr(),
                desc.as_ptr(),
                &mut tv,
                0,
            )
        };
        if r < 0 {
            Err(r)
        } else {
            Ok(())
        }
    }

    /// Release what [`SharedObject::lock_exclusive`] took.
    pub(crate) fn unlock(&self, oid: &str, name: &str, cookie: &str) -> Result<(), i32> {
        let (c_oid, c_name, c_cookie) = (cstr(oid)?, cstr(name)?, cstr(cookie)?);
        // SAFETY: a live ioctx and NUL-terminated strings that outlive the call.
        let r = unsafe {
            (self.api.rados_unlock)(self.io, c_oid.as_ptr(), c_name.as_ptr(), c_cookie.as_ptr())
        };
        if r < 0 {
            Err(r)
        } else {
            Ok(())
        }
    }

    /// Send `payload` to every watcher of the object (this one included) and wait up
    /// to `timeout_ms` for all of them to acknowledge (`-ETIMEDOUT` if one did not).
    pub(crate) fn notify(&self, payload: &[u8], timeout_ms: u64) -> Result<(), i32> {
        match self.notify_raw(payload, timeout_ms).0 {
            r if r < 0 => Err(r),
            _ => Ok(()),
        }
    }

    /// `rados_notify2`: its return value and the reply buffer (copied).
    fn notify_raw(&self, payload: &[u8], timeout_ms: u64) -> (c_int, Vec<u8>) {
        let Ok(len) = c_int::try_from(payload.len()) else {
            return (-libc::E2BIG, Vec::new());
        };
        let mut reply: *mut c_char = std::ptr::null_mut();
        let mut reply_len = 0usize;
        // SAFETY: a live ioctx, a NUL-terminated name, `payload` valid for `len`
        // bytes during the call, valid out-pointers.
        let r = unsafe {
            (self.api.rados_notify2)(
                self.io,
                self.oid.as_ptr(),
                payload.as_ptr().cast(),
                len,
                timeout_ms,
                &mut reply,
                &mut reply_len,
            )
        };
        let mut copy = Vec::new();
        if !reply.is_null() {
            // SAFETY: librados allocated `reply_len` readable bytes at `reply` for us
            // to read and then free.
            unsafe {
                copy.extend_from_slice(std::slice::from_raw_parts(reply.cast::<u8>(), reply_len));
                (self.api.rados_buffer_free)(reply);
            }
        }
        (r, copy)
    }
}

/// The acknowledgements in a `rados_notify2` reply: Ceph's encoding of a map from
/// (watcher's client id, watch cookie) to the reply bytes, followed by the set of
/// watchers that timed out (all integers little-endian, lengths 32-bit). `None` when
/// the bytes do not follow that layout.
pub(crate) fn parse_notify_reply(buf: &[u8]) -> Option<Vec<(u64, u64, Vec<u8>)>> {
    if buf.is_empty() {
        return Some(Vec::new());
    }
    let mut at = 0usize;
    let mut take = |n: usize| -> Option<&[u8]> {
        let end = at.checked_add(n).filter(|e| *e <= buf.len())?;
        let s = &buf[at..end];
        at = end;
        Some(s)
    };
    let u32le = |b: &[u8]| u32::from_le_bytes(b.try_into().expect("4 bytes"));
    let u64le = |b: &[u8]| u64::from_le_bytes(b.try_into().expect("8 bytes"));
    let count = u32le(take(4)?);
    let mut acks = Vec::new();
    for _ in 0..count {
        let gid = u64le(take(8)?);
        let cookie = u64le(take(8)?);
        let len = u32le(take(4)?) as usize;
        acks.push((gid, cookie, take(len)?.to_vec()));
    }
    Some(acks)
}

impl Drop for SharedObject {
    fn drop(&mut self) {
        let cookie = self
            .cookie
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        // SAFETY: the watch registered on this ioctx is removed; then callbacks in
        // progress on the cluster handle (alive: the store drops us first) are waited
        // for, so nothing uses `ctx` after it is freed.
        unsafe {
            if let Some(cookie) = cookie {
                (self.api.rados_unwatch2)(self.io, cookie);
            }
            (self.api.rados_watch_flush)(self.cluster);
            drop(Box::from_raw(self.ctx));
        }
        // SAFETY: owned, live, and no watch uses it any more.
        unsafe { (self.api.rados_ioctx_destroy)(self.io) }
    }
}

/// librados' watch callback: hand the payload on, then acknowledge, so the
/// notifier's wait ends only after this gateway has the new state.
unsafe extern "C" fn on_watch_notify(
    arg: *mut c_void,
    notify_id: u64,
    cookie: u64,
    _notifier: u64,
    data: *mut c_void,
    len: usize,
) {
    // SAFETY: `arg` is the `WatchCtx` registered with this watch, alive until the
    // watch is removed and flushed in `SharedObject::drop`.
    let ctx = unsafe { &*arg.cast::<WatchCtx>() };
    let payload: &[u8] = if data.is_null() || len == 0 {
        &[]
    } else {
        // SAFETY: librados hands `len` readable bytes at `data` for the callback.
        unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) }
    };
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (ctx.on_notify)(payload)));
    let ack = ctx
        .ack
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let ack_len = c_int::try_from(ack.len()).unwrap_or(0);
    // SAFETY: a live ioctx and name; the reply is valid for `ack_len` bytes during
    // the call (librados copies it).
    unsafe {
        (ctx.api.rados_notify_ack)(
            ctx.io,
            ctx.oid.as_ptr(),
            notify_id,
            cookie,
            ack.as_ptr().cast(),
            ack_len,
        )
    };
}

/// librados' watch error callback (the watch was lost, e.g. the OSD timed it out).
unsafe extern "C" fn on_watch_error(arg: *mut c_void, _cookie: u64, err: c_int) {
    // SAFETY: as in `on_watch_notify`.
    let ctx = unsafe { &*arg.cast::<WatchCtx>() };
    ctx.lost.store(true, Ordering::Release);
    tracing::warn!(
        "rados object {}: watch lost ({}); watching it again",
        ctx.oid.to_string_lossy(),
        std::io::Error::from_raw_os_error(-err)
    );
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // SAFETY: the handle is live and owned; every ioctx and image made from it
        // borrows `self` (or is dropped first by its owner, see `RbdImage`), so none
        // is used after this.
        unsafe { (self.api.rados_shutdown)(self.handle) }
    }
}

/// A pool's I/O context, destroyed on drop; it cannot outlive its cluster.
pub(crate) struct IoCtx<'c> {
    cluster: &'c Cluster,
    handle: IoctxT,
}

impl Drop for IoCtx<'_> {
    fn drop(&mut self) {
        // SAFETY: owned, live; images opened on it keep their own reference inside
        // librbd (rbd_open duplicates the ioctx), so destroying ours is allowed.
        unsafe { (self.cluster.api.rados_ioctx_destroy)(self.handle) }
    }
}

impl IoCtx<'_> {
    /// Open image `name` (at snapshot `snap`, read-only, when given; read-only also
    /// when `readonly`).
    pub(crate) fn open(
        &self,
        name: &str,
        snap: Option<&str>,
        readonly: bool,
    ) -> Result<Image, i32> {
        let api = self.cluster.api;
        let c_name = cstr(name)?;
        let c_snap = snap.map(cstr).transpose()?;
        let snap_ptr = c_snap.as_ref().map_or(std::ptr::null(), |s| s.as_ptr());
        let mut image: ImageT = std::ptr::null_mut();
        let open = if readonly || snap.is_some() {
            api.rbd_open_read_only
        } else {
            api.rbd_open
        };
        // SAFETY: a live ioctx, a valid out-pointer, NUL-terminated names (the snap
        // pointer may be NULL: the head).
        let r = unsafe { open(self.handle, c_name.as_ptr(), &mut image, snap_ptr) };
        if r < 0 {
            return Err(r);
        }
        Ok(Image {
            api,
            handle: image,
            watch: None,
        })
    }
}

/// What an update watch calls (from a librbd thread) when the image header changes:
/// a resize, a snapshot, a feature change.
pub(crate) type OnUpdate = Box<dyn Fn() + Send + Sync>;

/// An open image, closed on drop. The cluster it came from must outlive it (the
/// store keeps both and drops the image first).
pub(crate) struct Image {
    api: &'static Api,
    handle: ImageT,
    /// The update watch's handle and its boxed callback (owned here, freed after the
    /// watch is removed).
    watch: Option<(u64, *mut OnUpdate)>,
}

// SAFETY: librbd image handles may be used from any thread; the asynchronous calls
// are made concurrently by design. The watch box is only touched in `Drop`.
unsafe impl Send for Image {}
// SAFETY: as above.
unsafe impl Sync for Image {}

impl Image {
    /// The image size in bytes.
    pub(crate) fn size(&self) -> Result<u64, i32> {
        let mut size = 0u64;
        // SAFETY: a live image and a valid out-pointer.
        let r = unsafe { (self.api.rbd_get_size)(self.handle, &mut size) };
        if r < 0 {
            Err(r)
        } else {
            Ok(size)
        }
    }

    /// The image's id (stable across renames; the same for every gateway).
    pub(crate) fn id(&self) -> Result<String, i32> {
        let mut buf = vec![0u8; 64];
        // SAFETY: a live image; `buf` has `buf.len()` writable bytes.
        let r = unsafe { (self.api.rbd_get_id)(self.handle, buf.as_mut_ptr().cast(), buf.len()) };
        if r < 0 {
            return Err(r);
        }
        let id = CStr::from_bytes_until_nul(&buf).map_err(|_| -libc::EINVAL)?;
        Ok(id.to_string_lossy().into_owned())
    }

    /// The image's feature bits (`RBD_FEATURE_*`).
    pub(crate) fn features(&self) -> Result<u64, i32> {
        let mut features = 0u64;
        // SAFETY: a live image and a valid out-pointer.
        let r = unsafe { (self.api.rbd_get_features)(self.handle, &mut features) };
        if r < 0 {
            Err(r)
        } else {
            Ok(features)
        }
    }

    /// Who holds the image's exclusive lock (librbd's managed lock): the owners'
    /// client addresses, none when it is free (`-ENOENT` from librbd), `-EINVAL`
    /// for an image without the exclusive-lock feature.
    pub(crate) fn exclusive_lock_owners(&self) -> Result<Vec<String>, i32> {
        let mut max = 4usize;
        loop {
            let mut owners: Vec<*mut c_char> = vec![std::ptr::null_mut(); max];
            let mut mode: c_int = 0;
            let mut count = max;
            // SAFETY: a live image; `owners` has `count` writable slots and librbd
            // writes at most that many (else -ERANGE with the count it needs).
            let r = unsafe {
                (self.api.rbd_lock_get_owners)(
                    self.handle,
                    &mut mode,
                    owners.as_mut_ptr(),
                    &mut count,
                )
            };
            if r == -libc::ENOENT {
                return Ok(Vec::new());
            }
            if r == -libc::ERANGE && count > max && count <= 1024 {
                max = count;
                continue;
            }
            if r < 0 {
                return Err(r);
            }
            let count = count.min(max);
            let names = owners[..count]
                .iter()
                .filter(|p| !p.is_null())
                // SAFETY: librbd filled the first `count` slots with NUL-terminated
                // strings, valid until the cleanup below.
                .map(|p| unsafe { CStr::from_ptr(*p) }.to_string_lossy().into_owned())
                .collect();
            // SAFETY: the slots librbd filled, released once.
            unsafe { (self.api.rbd_lock_get_owners_cleanup)(owners.as_mut_ptr(), count) };
            return Ok(names);
        }
    }

    /// Break the exclusive lock held by `owner` (an address from
    /// [`Image::exclusive_lock_owners`]). librbd blocklists that client first
    /// (`rbd_blocklist_on_break_lock`, on by default), so it cannot write after
    /// losing the lock; `-EBUSY` if the lock is no longer `owner`'s.
    pub(crate) fn break_exclusive_lock(&self, owner: &str) -> Result<(), i32> {
        let c_owner = cstr(owner)?;
        // SAFETY: a live image and a NUL-terminated owner; 0 is
        // RBD_LOCK_MODE_EXCLUSIVE.
        let r = unsafe { (self.api.rbd_lock_break)(self.handle, 0, c_owner.as_ptr()) };
        if r < 0 {
            Err(r)
        } else {
            Ok(())
        }
    }

    /// Call `f` whenever the image header changes (until the image is closed).
    pub(crate) fn watch_updates(&mut self, f: OnUpdate) -> Result<(), i32> {
        if self.watch.is_some() {
            return Err(-libc::EBUSY);
        }
        let arg: *mut OnUpdate = Box::into_raw(Box::new(f));
        let mut handle = 0u64;
        // SAFETY: a live image; `arg` points to a boxed closure that stays allocated
        // until after `rbd_update_unwatch` in `Drop` (which waits for a callback in
        // progress), so the trampoline never sees freed memory.
        let r =
            unsafe { (self.api.rbd_update_watch)(self.handle, &mut handle, on_update, arg.cast()) };
        if r < 0 {
            // SAFETY: the watch was not registered; the box is ours again.
            drop(unsafe { Box::from_raw(arg) });
            return Err(r);
        }
        self.watch = Some((handle, arg));
        Ok(())
    }

    /// Start `aio` on the image. On success its completion runs on a librbd thread
    /// with the return value; on failure (a negative errno at submission) the
    /// request comes back untouched so the caller can answer it.
    pub(crate) fn submit(&self, aio: Box<Aio>) -> Result<(), (Box<Aio>, i32)> {
        let raw: *mut Aio = Box::into_raw(aio);
        let mut comp: CompletionT = std::ptr::null_mut();
        // SAFETY: `raw` is a live heap allocation we give to librbd as the callback
        // argument; `comp` is a valid out-pointer.
        let r = unsafe { (self.api.rbd_aio_create_completion)(raw.cast(), on_complete, &mut comp) };
        if r < 0 {
            // SAFETY: no completion exists, nobody else has `raw`.
            return Err((unsafe { Box::from_raw(raw) }, r));
        }
        // SAFETY: `raw` stays allocated until `on_complete` runs (it frees it), so the
        // buffers inside it (read target, write data, compare data, mismatch offset)
        // are valid for the whole operation; lengths are those of the buffers.
        // `Bytes` and `BytesMut` never move their heap data while owned.
        let r = unsafe {
            let a = &mut *raw;
            match &mut a.op {
                AioOp::Read { offset, buf } => (self.api.rbd_aio_read)(
                    self.handle,
                    *offset,
                    buf.len(),
                    buf.as_mut_ptr().cast(),
                    comp,
                ),
                AioOp::Write { offset, data } => (self.api.rbd_aio_write)(
                    self.handle,
                    *offset,
                    data.len(),
                    data.as_ptr().cast(),
                    comp,
                ),
                AioOp::Flush => (self.api.rbd_aio_flush)(self.handle, comp),
                AioOp::Discard { offset, len } => {
                    (self.api.rbd_aio_discard)(self.handle, *offset, *len, comp)
                }
                AioOp::WriteSame {
                    offset,
                    len,
                    pattern,
                } => (self.api.rbd_aio_writesame)(
                    self.handle,
                    *offset,
                    *len,
                    pattern.as_ptr().cast(),
                    pattern.len(),
                    comp,
                    0,
                ),
                AioOp::CompareAndWrite {
                    offset,
                    compare,
                    data,
                    mismatch,
                } => (self.api.rbd_aio_compare_and_write)(
                    self.handle,
                    *offset,
                    data.len(),
                    compare.as_ptr().cast(),
                    data.as_ptr().cast(),
                    comp,
                    mismatch,
                    0,
                ),
            }
        };
        if r < 0 {
            // SAFETY: the operation was refused, so the callback will not run: the
            // completion and the request are ours to free.
            unsafe { (self.api.rbd_aio_release)(comp) };
            // SAFETY: as above.
            return Err((unsafe { Box::from_raw(raw) }, r));
        }
        Ok(())
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        let watch = self.watch.take();
        if let Some((handle, _)) = watch {
            // SAFETY: a live image and the handle its watch was registered with;
            // librbd waits for a notification in progress before it returns.
            unsafe { (self.api.rbd_update_unwatch)(self.handle, handle) };
        }
        // SAFETY: a live, owned image; librbd waits for operations in flight to
        // complete (their callbacks run) before it returns.
        unsafe { (self.api.rbd_close)(self.handle) };
        if let Some((_, arg)) = watch {
            // SAFETY: the watch is gone and the image closed: nothing can call
            // `on_update` with `arg` any more, so the box is ours to free.
            drop(unsafe { Box::from_raw(arg) });
        }
    }
}

/// One asynchronous operation: what to do, and what to call with the outcome.
pub(crate) struct Aio {
    /// The operation and its buffers.
    pub(crate) op: AioOp,
    /// Called once, on a librbd thread, with the operation (buffers included) and
    /// librbd's return value (bytes or 0 on success, a negative errno on failure).
    pub(crate) done: Box<dyn FnOnce(AioOp, isize) + Send>,
}

/// The operations [`Image::submit`] runs, owning their buffers.
pub(crate) enum AioOp {
    /// `rbd_aio_read` into `buf` (its length is the read's).
    Read { offset: u64, buf: BytesMut },
    /// `rbd_aio_write` of `data`.
    Write { offset: u64, data: Bytes },
    /// `rbd_aio_flush`.
    Flush,
    /// `rbd_aio_discard`.
    Discard { offset: u64, len: u64 },
    /// `rbd_aio_writesame`: `pattern` repeated over `len` bytes.
    WriteSame {
        offset: u64,
        len: usize,
        pattern: Bytes,
    },
    /// `rbd_aio_compare_and_write`; on `-EILSEQ` `mismatch` holds where the data
    /// first differed.
    CompareAndWrite {
        offset: u64,
        compare: Bytes,
        data: Bytes,
        mismatch: u64,
    },
}

/// librbd's completion callback: takes the request back and hands it on.
unsafe extern "C" fn on_complete(comp: CompletionT, arg: *mut c_void) {
    // SAFETY: `arg` is the pointer `Image::submit` made with `Box::into_raw` and gave
    // to exactly this completion; librbd calls back once, so we own it again.
    let aio = unsafe { Box::from_raw(arg.cast::<Aio>()) };
    let api = match API.get() {
        Some(Ok(api)) => api,
        // Unreachable: a completion exists only after the API loaded.
        _ => return,
    };
    // SAFETY: `comp` is the live completion this callback belongs to; released once.
    let ret = unsafe {
        let ret = (api.rbd_aio_get_return_value)(comp);
        (api.rbd_aio_release)(comp);
        ret
    };
    let Aio { op, done } = *aio;
    // A panic must not unwind into C.
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || done(op, ret)));
}

/// librbd's update-watch callback.
unsafe extern "C" fn on_update(arg: *mut c_void) {
    // SAFETY: `arg` is the boxed closure registered in `watch_updates`, alive until
    // the watch is removed in `Image::drop`.
    let f = unsafe { &*arg.cast::<OnUpdate>() };
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
}

#[cfg(test)]
mod tests {
    use super::parse_notify_reply;

    fn entry(gid: u64, cookie: u64, reply: &[u8]) -> Vec<u8> {
        let mut v = gid.to_le_bytes().to_vec();
        v.extend_from_slice(&cookie.to_le_bytes());
        v.extend_from_slice(&(reply.len() as u32).to_le_bytes());
        v.extend_from_slice(reply);
        v
    }

    #[test]
    fn notify_replies_are_read_as_ceph_encodes_them() {
        let mut buf = 2u32.to_le_bytes().to_vec();
        buf.extend(entry(4171, 94_000_000_001, b"tgtd-gw 1\nport 1\n"));
        buf.extend(entry(4180, 7, b""));
        // One watcher timed out: (gid, cookie) after the map.
        buf.extend_from_slice(&1u32.to_le_bytes());
        buf.extend_from_slice(&9u64.to_le_bytes());
        buf.extend_from_slice(&9u64.to_le_bytes());
        assert_eq!(
            parse_notify_reply(&buf),
            Some(vec![
                (4171, 94_000_000_001, b"tgtd-gw 1\nport 1\n".to_vec()),
                (4180, 7, Vec::new()),
            ])
        );
        assert_eq!(parse_notify_reply(&[]), Some(Vec::new()), "no reply at all");
        // Cut anywhere inside an entry: refused, never read past the end.
        for cut in 1..buf.len() - 20 {
            if cut != 4 + 37 && cut != 4 + 37 + 20 {
                assert_eq!(parse_notify_reply(&buf[..cut]), None, "cut at {cut}");
            }
        }
        let huge = [&1u32.to_le_bytes()[..], &[0; 16], &u32::MAX.to_le_bytes()].concat();
        assert_eq!(parse_notify_reply(&huge), None);
    }
}

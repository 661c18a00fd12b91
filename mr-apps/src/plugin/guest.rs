//! The plugin side of the ABI: what [`export_app!`](crate::export_app)
//! expands to call. Wraps the plugin's [`App`] in `extern "C"` functions
//! that catch every panic, so none unwinds across the boundary.

use super::{
    bytes, panic_message, BytesFn, CountFn, EmitFn, NextFn, PluginVTable, ABI_VERSION,
    FLAG_COMBINER, FLAG_PARTITIONER, FLAG_SUMS_COUNTS, FLAG_TOTAL_ORDER, FLAG_VALUES_ONLY,
    FLAG_WHOLE_FILE,
};
use crate::{App, Conf, Emit, Values};
use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::OnceLock;

/// The app as made, unconfigured: its name and flags fill the table.
static APP: OnceLock<Box<dyn App>> = OnceLock::new();
/// The app configured with the job's parameters, and their encoding: a
/// worker runs one job, so the plugin is configured once (the same
/// parameters again are no change; others are refused).
static CONFIGURED: OnceLock<(Box<dyn App>, Vec<u8>)> = OnceLock::new();
/// The constructor `export_app!` gave, for the configured instance.
static MAKE: OnceLock<fn() -> Box<dyn App>> = OnceLock::new();
static TABLE: OnceLock<SyncTable> = OnceLock::new();

struct SyncTable(PluginVTable);
// SAFETY: the table holds only function pointers and a pointer to the
// app's name, which lives in `APP` for the life of the library.
unsafe impl Sync for SyncTable {}
unsafe impl Send for SyncTable {}

fn app() -> &'static dyn App {
    if let Some((app, _)) = CONFIGURED.get() {
        return app.as_ref();
    }
    APP.get()
        .expect("mr_plugin_vtable was not called first")
        .as_ref()
}

/// Runs `f`, turning a panic into a message sent through `set_err`.
fn guarded(err: *mut c_void, set_err: BytesFn, f: impl FnOnce()) -> i32 {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(()) => 0,
        Err(payload) => {
            let msg = panic_message(payload.as_ref());
            // SAFETY: the host passed a live `err` sink for this call.
            unsafe { set_err(err, msg.as_ptr(), msg.len()) };
            1
        }
    }
}

struct FfiEmit {
    sink: *mut c_void,
    emit: EmitFn,
    count: CountFn,
}
impl Emit for FfiEmit {
    fn emit(&mut self, key: &[u8], value: &[u8]) {
        // SAFETY: the host's sink is live for the duration of the map call.
        unsafe {
            (self.emit)(
                self.sink,
                key.as_ptr(),
                key.len(),
                value.as_ptr(),
                value.len(),
            )
        }
    }
    fn count(&mut self, name: &str, delta: u64) {
        // SAFETY: as for emit.
        unsafe { (self.count)(self.sink, name.as_ptr(), name.len(), delta) }
    }
}

struct FfiValues {
    src: *mut c_void,
    next: NextFn,
    count: CountFn,
}
impl Values for FfiValues {
    fn next_value(&mut self) -> Option<&[u8]> {
        let mut p = std::ptr::null();
        let mut l = 0usize;
        // SAFETY: the host's source is live for the duration of the call;
        // the slice it yields stays valid until the next call, which the
        // `&mut self` borrow enforces.
        unsafe { (self.next)(self.src, &mut p, &mut l).then(|| bytes(p, l)) }
    }
    fn count(&mut self, name: &str, delta: u64) {
        // SAFETY: the host's source is live for the duration of the call.
        unsafe { (self.count)(self.src, name.as_ptr(), name.len(), delta) }
    }
}

unsafe extern "C" fn map(
    fname: *const u8,
    fname_len: usize,
    data: *const u8,
    data_len: usize,
    sink: *mut c_void,
    emit: EmitFn,
    count: CountFn,
    err: *mut c_void,
    set_err: BytesFn,
) -> i32 {
    guarded(err, set_err, || {
        // SAFETY: the host passes valid UTF-8 file names and live buffers.
        let (name, chunk) = unsafe { (bytes(fname, fname_len), bytes(data, data_len)) };
        let name = std::str::from_utf8(name).expect("host passed a non-UTF-8 file name");
        app().map(name, chunk, &mut FfiEmit { sink, emit, count });
    })
}

unsafe extern "C" fn combine(
    key: *const u8,
    key_len: usize,
    src: *mut c_void,
    next: NextFn,
    count: CountFn,
    sink: *mut c_void,
    out: BytesFn,
    err: *mut c_void,
    set_err: BytesFn,
) -> i32 {
    guarded(err, set_err, || {
        // SAFETY: the key buffer is live for the call.
        let key = unsafe { bytes(key, key_len) };
        let mut values = FfiValues { src, next, count };
        // SAFETY: the output sink is live for the call.
        app().combine(key, &mut values, &mut |v| unsafe {
            out(sink, v.as_ptr(), v.len())
        });
    })
}

unsafe extern "C" fn reduce(
    key: *const u8,
    key_len: usize,
    src: *mut c_void,
    next: NextFn,
    count: CountFn,
    sink: *mut c_void,
    out: BytesFn,
    err: *mut c_void,
    set_err: BytesFn,
) -> i32 {
    guarded(err, set_err, || {
        // SAFETY: the key buffer is live for the call.
        let key = unsafe { bytes(key, key_len) };
        let mut buf = Vec::new();
        app().reduce(key, &mut FfiValues { src, next, count }, &mut buf);
        // SAFETY: the output sink is live for the call.
        unsafe { out(sink, buf.as_ptr(), buf.len()) };
    })
}

unsafe extern "C" fn partition(key: *const u8, key_len: usize, reduces: u32) -> u32 {
    // SAFETY: the key buffer is live for the call.
    let key = unsafe { bytes(key, key_len) };
    catch_unwind(AssertUnwindSafe(|| app().partition(key, reduces))).unwrap_or(u32::MAX)
}

unsafe extern "C" fn configure(
    conf: *const u8,
    conf_len: usize,
    err: *mut c_void,
    set_err: BytesFn,
) -> i32 {
    // SAFETY: the host passes a live buffer.
    let encoded = unsafe { bytes(conf, conf_len) }.to_vec();
    let refuse = |e: Vec<u8>| {
        // SAFETY: the host passed a live `err` sink for this call.
        unsafe { set_err(err, e.as_ptr(), e.len()) };
        1
    };
    if let Some((_, earlier)) = CONFIGURED.get() {
        return match *earlier == encoded {
            true => 0,
            false => refuse(b"Pplugin already configured with other parameters".to_vec()),
        };
    }
    let Some(conf) = Conf::decode(&encoded) else {
        return refuse(b"Pthe host passed malformed parameters".to_vec());
    };
    let make = *MAKE.get().expect("mr_plugin_vtable was not called first");
    let mut outcome = Ok(None);
    let rc = guarded(err, set_err, || {
        let mut app = make();
        outcome = app.configure(&conf).map(|()| Some(app));
    });
    match outcome {
        _ if rc != 0 => rc,
        Err(e) => refuse(super::encode_conf_error(&e)),
        Ok(app) => match CONFIGURED.set((app.expect("configured"), encoded.clone())) {
            Ok(()) => 0,
            // Another thread configured it first: the same parameters are
            // no change, others are refused.
            Err(_) => match CONFIGURED.get().is_some_and(|(_, e)| *e == encoded) {
                true => 0,
                false => refuse(b"Pplugin already configured with other parameters".to_vec()),
            },
        },
    }
}

/// Installs the plugin's app (once) and returns its function table.
pub fn install(make: fn() -> Box<dyn App>) -> *const PluginVTable {
    let _ = MAKE.set(make);
    let app = APP.get_or_init(make);
    let table = TABLE.get_or_init(|| {
        let name = app.name();
        let mut flags = 0;
        if app.whole_file() {
            flags |= FLAG_WHOLE_FILE;
        }
        if app.has_combiner() {
            flags |= FLAG_COMBINER;
        }
        if app.sums_counts() {
            flags |= FLAG_SUMS_COUNTS;
        }
        if app.has_partitioner() {
            flags |= FLAG_PARTITIONER;
        }
        if app.values_only() {
            flags |= FLAG_VALUES_ONLY;
        }
        if app.total_order() {
            flags |= FLAG_TOTAL_ORDER;
        }
        SyncTable(PluginVTable {
            abi_version: ABI_VERSION,
            flags,
            record_size: app.record_size().unwrap_or(0),
            name_ptr: name.as_ptr(),
            name_len: name.len(),
            map,
            combine,
            reduce,
            partition,
            configure,
        })
    });
    &table.0
}

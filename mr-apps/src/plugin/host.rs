//! The host side of the plugin ABI: loads a plugin library, checks its ABI
//! version before reading its table, and implements [`App`] by calling
//! through the table.

use crate::{App, Conf, ConfError, Emit, LoadError, Values};
use std::ffi::c_void;
use std::path::Path;

use super::{
    bytes, BytesFn, GroupFn, PluginVTable, ABI_VERSION, FLAG_COMBINER, FLAG_PARTITIONER,
    FLAG_SUMS_COUNTS, FLAG_TOTAL_ORDER, FLAG_VALUES_ONLY, FLAG_WHOLE_FILE, VERSION_SYMBOL,
    VTABLE_SYMBOL,
};

/// An app loaded from a plugin library; implements [`App`] by calling through
/// the plugin's table.
pub struct PluginApp {
    pub(super) table: *const PluginVTable,
    pub(super) name: String,
    // Keeps the code the table points into mapped; dropped last. None only
    // for tables of apps linked into this binary (tests).
    pub(super) _lib: Option<libloading::Library>,
}

// SAFETY: the table is immutable after loading and the plugin's functions are
// required (by the App contract they wrap) to be callable from any thread.
unsafe impl Send for PluginApp {}
unsafe impl Sync for PluginApp {}

/// Loads the plugin at `path`, checking its ABI version before using it.
pub fn load(path: &Path) -> Result<PluginApp, LoadError> {
    let fail = |reason: String| LoadError::Plugin {
        path: path.display().to_string(),
        reason,
    };
    if !path.is_file() {
        return Err(fail(
            "no such file (give a built-in app name or the path of a .so plugin)".into(),
        ));
    }
    // dlopen searches the library path for a bare name like "wc.so"; the
    // user means the file in this directory, so say so explicitly.
    let explicit;
    let path = if path.components().count() == 1 {
        explicit = Path::new(".").join(path);
        explicit.as_path()
    } else {
        path
    };
    // SAFETY: loading runs the library's initialisers; a plugin is trusted
    // code by the user's choice, as any program they run.
    let lib = unsafe { libloading::Library::new(path) }
        .map_err(|e| fail(format!("not a loadable shared library: {e}")))?;
    // SAFETY: the symbol types are the ABI's; a library exporting these names
    // with other types is not a plugin of ours and is outside our contract.
    let version = unsafe { lib.get::<extern "C" fn() -> u32>(VERSION_SYMBOL) }
        .map_err(|_| fail("not a MapReduce plugin (no mr_plugin_abi_version symbol; build it with mr_apps::export_app!)".into()))?();
    if version != ABI_VERSION {
        return Err(fail(format!(
            "plugin ABI version {version}, but this mrworker speaks version {ABI_VERSION}; rebuild the plugin against this release"
        )));
    }
    // SAFETY: as above.
    let table = unsafe { lib.get::<extern "C" fn() -> *const PluginVTable>(VTABLE_SYMBOL) }
        .map_err(|_| fail("plugin has no mr_plugin_vtable symbol".into()))?();
    if table.is_null() {
        return Err(fail("plugin returned no function table".into()));
    }
    // SAFETY: the version check above says the table has this layout.
    let t = unsafe { &*table };
    if t.abi_version != ABI_VERSION {
        return Err(fail(format!(
            "plugin table has ABI version {}",
            t.abi_version
        )));
    }
    // SAFETY: the name points into the plugin's app, which lives as long as `lib`.
    let name = String::from_utf8_lossy(unsafe { bytes(t.name_ptr, t.name_len) }).into_owned();
    Ok(PluginApp {
        table,
        name,
        _lib: Some(lib),
    })
}

// Host-side callbacks. Each receives a pointer to a Rust object the host
// passed in for exactly one call. None may unwind into the plugin (a panic
// crossing `extern "C"` aborts the whole worker), yet what they call can
// panic (an accumulator refusing a pair, or a value that is no count): so
// each runs under `callback`, which catches the panic, keeps it, and makes
// the rest of the plugin's callbacks in that call no-ops; the host raises
// it again once the plugin's function has returned (`PluginApp::check`),
// where the engine turns it into a failed attempt naming the record.

thread_local! {
    /// A panic a callback caught during the current plugin call.
    static CALLBACK_PANIC: std::cell::RefCell<Option<Box<dyn std::any::Any + Send>>> =
        const { std::cell::RefCell::new(None) };
}

/// Runs a callback's body unless an earlier one of this call panicked;
/// keeps its panic instead of unwinding. None when it did not run through.
fn callback<R>(f: impl FnOnce() -> R) -> Option<R> {
    if CALLBACK_PANIC.with(|p| p.borrow().is_some()) {
        return None;
    }
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => Some(r),
        Err(payload) => {
            CALLBACK_PANIC.with(|p| *p.borrow_mut() = Some(payload));
            None
        }
    }
}

unsafe extern "C" fn host_emit(
    sink: *mut c_void,
    k: *const u8,
    kl: usize,
    v: *const u8,
    vl: usize,
) {
    // SAFETY: `sink` is the `&mut &mut dyn Emit` passed to `map` below.
    let emit = unsafe { &mut *(sink as *mut &mut dyn Emit) };
    // SAFETY: the plugin passes live key/value buffers.
    callback(|| unsafe { emit.emit(bytes(k, kl), bytes(v, vl)) });
}

unsafe extern "C" fn host_count_emit(ctx: *mut c_void, n: *const u8, nl: usize, delta: u64) {
    // SAFETY: `ctx` is the `&mut &mut dyn Emit` passed to `map`.
    let emit = unsafe { &mut *(ctx as *mut &mut dyn Emit) };
    // SAFETY: the plugin passes a live name buffer.
    let name = String::from_utf8_lossy(unsafe { bytes(n, nl) });
    callback(|| emit.count(&name, delta));
}

unsafe extern "C" fn host_count_values(ctx: *mut c_void, n: *const u8, nl: usize, delta: u64) {
    // SAFETY: `ctx` is the `&mut &mut dyn Values` passed to combine/reduce.
    let values = unsafe { &mut *(ctx as *mut &mut dyn Values) };
    // SAFETY: the plugin passes a live name buffer.
    let name = String::from_utf8_lossy(unsafe { bytes(n, nl) });
    callback(|| values.count(&name, delta));
}

unsafe extern "C" fn host_next(src: *mut c_void, p: *mut *const u8, l: *mut usize) -> bool {
    // SAFETY: `src` is the `&mut &mut dyn Values` passed to combine/reduce.
    let values = unsafe { &mut *(src as *mut &mut dyn Values) };
    // After a panic the values end, so the plugin finishes its call.
    match callback(|| values.next_value().map(|v| (v.as_ptr(), v.len()))).flatten() {
        Some((ptr, len)) => {
            // SAFETY: the plugin passes valid out-pointers.
            unsafe {
                *p = ptr;
                *l = len;
            }
            true
        }
        None => false,
    }
}

unsafe extern "C" fn host_bytes_to_vec(sink: *mut c_void, p: *const u8, l: usize) {
    // SAFETY: `sink` is a `&mut Vec<u8>` passed for this call.
    let out = unsafe { &mut *(sink as *mut Vec<u8>) };
    // SAFETY: the plugin passes a live buffer.
    callback(|| out.extend_from_slice(unsafe { bytes(p, l) }));
}

unsafe extern "C" fn host_bytes_to_fn(sink: *mut c_void, p: *const u8, l: usize) {
    // SAFETY: `sink` is the `&mut &mut dyn FnMut(&[u8])` passed to combine.
    let out = unsafe { &mut *(sink as *mut &mut dyn FnMut(&[u8])) };
    // SAFETY: the plugin passes a live buffer.
    callback(|| out(unsafe { bytes(p, l) }));
}

impl PluginApp {
    fn table(&self) -> &PluginVTable {
        // SAFETY: validated at load; lives as long as `_lib`.
        unsafe { &*self.table }
    }

    /// Re-raises, on the host side where the engine's catch turns it into
    /// a failed attempt, a panic one of our callbacks caught during the
    /// call (first: it is the cause), else one the plugin reported.
    fn check(rc: i32, err: Vec<u8>) {
        if let Some(payload) = CALLBACK_PANIC.with(|p| p.borrow_mut().take()) {
            std::panic::resume_unwind(payload);
        }
        if rc != 0 {
            panic!("{}", String::from_utf8_lossy(&err));
        }
    }

    fn group(
        &self,
        f: GroupFn,
        key: &[u8],
        values: &mut dyn Values,
        sink: *mut c_void,
        out: BytesFn,
    ) {
        let mut err = Vec::new();
        let mut values = values;
        // SAFETY: every pointer is live for the duration of the call.
        let rc = unsafe {
            f(
                key.as_ptr(),
                key.len(),
                &mut values as *mut &mut dyn Values as *mut c_void,
                host_next,
                host_count_values,
                sink,
                out,
                &mut err as *mut Vec<u8> as *mut c_void,
                host_bytes_to_vec,
            )
        };
        Self::check(rc, err);
    }
}

impl App for PluginApp {
    fn name(&self) -> &str {
        &self.name
    }
    fn configure(&mut self, conf: &Conf) -> Result<(), ConfError> {
        let encoded = conf.encode();
        let mut err = Vec::new();
        // SAFETY: every pointer is live for the duration of the call.
        let rc = unsafe {
            (self.table().configure)(
                encoded.as_ptr(),
                encoded.len(),
                &mut err as *mut Vec<u8> as *mut c_void,
                host_bytes_to_vec,
            )
        };
        match rc {
            0 => Ok(()),
            _ => Err(super::decode_conf_error(&err)),
        }
    }
    fn record_size(&self) -> Option<u32> {
        Some(self.table().record_size).filter(|&n| n > 0)
    }
    fn values_only(&self) -> bool {
        self.table().flags & FLAG_VALUES_ONLY != 0
    }
    fn total_order(&self) -> bool {
        self.table().flags & FLAG_TOTAL_ORDER != 0
    }
    fn whole_file(&self) -> bool {
        self.table().flags & FLAG_WHOLE_FILE != 0
    }
    fn has_combiner(&self) -> bool {
        self.table().flags & FLAG_COMBINER != 0
    }
    fn sums_counts(&self) -> bool {
        self.table().flags & FLAG_SUMS_COUNTS != 0
    }
    fn has_partitioner(&self) -> bool {
        self.table().flags & FLAG_PARTITIONER != 0
    }
    fn partition(&self, key: &[u8], reduces: u32) -> u32 {
        // SAFETY: the key buffer is live for the call.
        let r = unsafe { (self.table().partition)(key.as_ptr(), key.len(), reduces) };
        assert!(r != u32::MAX, "the plugin's partition panicked on a key");
        r
    }
    fn map(&self, filename: &str, chunk: &[u8], emit: &mut dyn Emit) {
        let mut err = Vec::new();
        let mut emit = emit;
        // SAFETY: every pointer is live for the duration of the call.
        let rc = unsafe {
            (self.table().map)(
                filename.as_ptr(),
                filename.len(),
                chunk.as_ptr(),
                chunk.len(),
                &mut emit as *mut &mut dyn Emit as *mut c_void,
                host_emit,
                host_count_emit,
                &mut err as *mut Vec<u8> as *mut c_void,
                host_bytes_to_vec,
            )
        };
        Self::check(rc, err);
    }
    fn combine(&self, key: &[u8], values: &mut dyn Values, out: &mut dyn FnMut(&[u8])) {
        let mut out = out;
        let sink = &mut out as *mut &mut dyn FnMut(&[u8]) as *mut c_void;
        self.group(self.table().combine, key, values, sink, host_bytes_to_fn);
    }
    fn reduce(&self, key: &[u8], values: &mut dyn Values, out: &mut Vec<u8>) {
        let sink = out as *mut Vec<u8> as *mut c_void;
        self.group(self.table().reduce, key, values, sink, host_bytes_to_vec);
    }
}

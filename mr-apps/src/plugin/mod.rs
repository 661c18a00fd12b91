//! The plugin ABI: how an app compiled as a `cdylib` is loaded by `mrworker`.
//!
//! Rust has no stable ABI, so a plugin exposes a versioned table of
//! `extern "C"` functions ([`PluginVTable`]) through two exported symbols:
//! `mr_plugin_abi_version` (checked first, so an incompatible plugin is
//! refused before its table is read) and `mr_plugin_vtable`. Apps never write
//! these by hand: [`export_app!`](crate::export_app) generates them around any
//! [`App`](crate::App). Panics in app code are caught inside the plugin, never unwound
//! across the boundary, and come back as an error message that the host turns
//! into a failed task attempt.

use std::ffi::c_void;

/// The ABI version this build of the framework speaks.
pub const ABI_VERSION: u32 = 3;

/// Symbol name of `extern "C" fn() -> u32` returning the plugin's ABI version.
pub const VERSION_SYMBOL: &[u8] = b"mr_plugin_abi_version";
/// Symbol name of `extern "C" fn() -> *const PluginVTable`.
pub const VTABLE_SYMBOL: &[u8] = b"mr_plugin_vtable";

/// `PluginVTable::flags` bit: map needs whole files.
pub const FLAG_WHOLE_FILE: u32 = 1;
/// `PluginVTable::flags` bit: the app has a combiner.
pub const FLAG_COMBINER: u32 = 2;
/// `PluginVTable::flags` bit: values are decimal counts that combine by summing.
pub const FLAG_SUMS_COUNTS: u32 = 4;
/// `PluginVTable::flags` bit: the app chooses partitions (`partition`).
pub const FLAG_PARTITIONER: u32 = 8;
/// `PluginVTable::flags` bit: outputs hold the reduce's values alone.
pub const FLAG_VALUES_ONLY: u32 = 16;
/// `PluginVTable::flags` bit: outputs must be in total order.
pub const FLAG_TOTAL_ORDER: u32 = 32;

/// Host callback receiving one emitted pair.
pub type EmitFn =
    unsafe extern "C" fn(sink: *mut c_void, k: *const u8, kl: usize, v: *const u8, vl: usize);
/// Host callback yielding the next value; returns false when exhausted.
pub type NextFn =
    unsafe extern "C" fn(src: *mut c_void, ptr: *mut *const u8, len: *mut usize) -> bool;
/// Host callback adding `delta` to the app-defined counter `name`; `ctx` is
/// the `sink` of map or the `src` of combine/reduce.
pub type CountFn =
    unsafe extern "C" fn(ctx: *mut c_void, name: *const u8, name_len: usize, delta: u64);
/// Host callback receiving bytes (a combined value, reduce output, or an error message).
pub type BytesFn = unsafe extern "C" fn(sink: *mut c_void, p: *const u8, l: usize);

/// The function table a plugin exports. Every function returns 0 on success
/// and non-zero after reporting a panic message through `err`.
#[repr(C)]
pub struct PluginVTable {
    /// Must equal [`ABI_VERSION`].
    pub abi_version: u32,
    /// [`FLAG_WHOLE_FILE`] | [`FLAG_COMBINER`] | [`FLAG_SUMS_COUNTS`] |
    /// [`FLAG_PARTITIONER`] | [`FLAG_VALUES_ONLY`] | [`FLAG_TOTAL_ORDER`].
    pub flags: u32,
    /// The size of fixed-length input records; 0 when records are lines.
    pub record_size: u32,
    /// The app's name, UTF-8, not NUL-terminated.
    pub name_ptr: *const u8,
    /// Length of the name in bytes.
    pub name_len: usize,
    /// `map(filename, chunk, emit)`.
    pub map: unsafe extern "C" fn(
        fname: *const u8,
        fname_len: usize,
        data: *const u8,
        data_len: usize,
        sink: *mut c_void,
        emit: EmitFn,
        count: CountFn,
        err: *mut c_void,
        set_err: BytesFn,
    ) -> i32,
    /// `combine(key, values, out)`; `out` is called once per kept value.
    pub combine: GroupFn,
    /// `reduce(key, values, out)`; `out` is called with the output value.
    pub reduce: GroupFn,
    /// `partition(key, reduces)`; `u32::MAX` if the app panicked.
    pub partition: unsafe extern "C" fn(key: *const u8, key_len: usize, reduces: u32) -> u32,
    /// `configure(conf)`, with the job's parameters as [`Conf::encode`]
    /// gives them; a refusal comes back through `err` as
    /// [`encode_conf_error`] gives it (a panic as its message).
    ///
    /// [`Conf::encode`]: crate::Conf::encode
    pub configure: unsafe extern "C" fn(
        conf: *const u8,
        conf_len: usize,
        err: *mut c_void,
        set_err: BytesFn,
    ) -> i32,
}

/// A configuration refusal as it crosses the boundary: `M key NUL what`,
/// or `I key NUL value NUL reason` (the plugin's own failures: `P reason`).
pub fn encode_conf_error(e: &crate::ConfError) -> Vec<u8> {
    match e {
        crate::ConfError::Missing { key, what } => format!("M{key}\0{what}"),
        crate::ConfError::Invalid { key, value, reason } => format!("I{key}\0{value}\0{reason}"),
    }
    .into_bytes()
}

/// The refusal [`encode_conf_error`] encoded; anything else (a panic's
/// message) becomes an invalid-parameters refusal saying so.
pub fn decode_conf_error(bytes: &[u8]) -> crate::ConfError {
    let text = String::from_utf8_lossy(bytes);
    let fields: Vec<&str> = text.get(1..).unwrap_or("").split('\0').collect();
    match (text.chars().next(), fields.as_slice()) {
        (Some('M'), [key, what]) => crate::ConfError::Missing {
            key: key.to_string(),
            what: what.to_string(),
        },
        (Some('I'), [key, value, reason]) => crate::ConfError::Invalid {
            key: key.to_string(),
            value: value.to_string(),
            reason: reason.to_string(),
        },
        (Some('P'), [reason]) => crate::ConfError::Invalid {
            key: "(any)".into(),
            value: String::new(),
            reason: format!("the plugin cannot take its parameters: {reason}"),
        },
        _ => crate::ConfError::Invalid {
            key: "(any)".into(),
            value: String::new(),
            reason: format!("the plugin failed to take its parameters: {text}"),
        },
    }
}

/// Shape shared by combine and reduce.
pub type GroupFn = unsafe extern "C" fn(
    key: *const u8,
    key_len: usize,
    src: *mut c_void,
    next: NextFn,
    count: CountFn,
    sink: *mut c_void,
    out: BytesFn,
    err: *mut c_void,
    set_err: BytesFn,
) -> i32;

/// Turns a panic payload into its message.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_string()
    }
}

/// Bytes from a raw pair; tolerates a null pointer when the length is 0.
///
/// # Safety
/// `p` must point at `l` readable bytes that outlive the returned slice.
pub(crate) unsafe fn bytes<'a>(p: *const u8, l: usize) -> &'a [u8] {
    if l == 0 {
        &[]
    } else {
        // SAFETY: the caller guarantees `p` points at `l` live bytes.
        unsafe { std::slice::from_raw_parts(p, l) }
    }
}

/// The plugin side: what [`export_app!`](crate::export_app) expands to call.
pub mod guest;
/// The host side: loading a plugin and calling through its table.
mod host;

pub use host::{load, PluginApp};

/// Exports an [`App`](crate::App) as a plugin: put `mr_apps::export_app!(MyApp::default());`
/// in a crate built with `crate-type = ["cdylib"]`.
#[macro_export]
macro_rules! export_app {
    ($make:expr) => {
        /// The plugin ABI version (see `mr_apps::plugin`).
        #[no_mangle]
        pub extern "C" fn mr_plugin_abi_version() -> u32 {
            $crate::plugin::ABI_VERSION
        }

        /// The plugin's function table (see `mr_apps::plugin`).
        #[no_mangle]
        pub extern "C" fn mr_plugin_vtable() -> *const $crate::plugin::PluginVTable {
            fn make() -> ::std::boxed::Box<dyn $crate::App> {
                ::std::boxed::Box::new($make)
            }
            $crate::plugin::guest::install(make)
        }
    };
}

#[cfg(test)]
mod tests;

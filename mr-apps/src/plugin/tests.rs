//! Tests of the plugin ABI without building a shared library.
use super::*;
use crate::{App, Emit, SliceValues, Values, VecEmit};
use std::path::Path;

/// Word count whose map panics on "boom": exercises both directions of
/// the ABI and the panic path without building a shared library.
struct Touchy;

impl App for Touchy {
    fn name(&self) -> &str {
        "touchy"
    }
    fn has_combiner(&self) -> bool {
        true
    }
    fn map(&self, f: &str, chunk: &[u8], emit: &mut dyn Emit) {
        assert!(chunk != b"boom", "boom in {f}");
        crate::apps::wc::WordCount.map(f, chunk, emit);
    }
    fn combine(&self, k: &[u8], v: &mut dyn Values, out: &mut dyn FnMut(&[u8])) {
        crate::apps::wc::WordCount.combine(k, v, out);
    }
    fn reduce(&self, k: &[u8], v: &mut dyn Values, out: &mut Vec<u8>) {
        crate::apps::wc::WordCount.reduce(k, v, out);
    }
}

#[test]
fn calls_cross_the_table_and_panics_come_back_as_messages() {
    let table = guest::install(|| Box::new(Touchy));
    let app = PluginApp {
        table,
        name: "touchy".into(),
        _lib: None,
    };
    assert!(app.has_combiner() && !app.whole_file());
    let mut e = VecEmit::default();
    app.map("f.txt", b"a b a", &mut e);
    assert_eq!(e.pairs.len(), 3);
    let mut kept = Vec::new();
    app.combine(b"a", &mut SliceValues::new(&["1", "2"]), &mut |v| {
        kept.push(v.to_vec())
    });
    assert_eq!(kept, vec![b"3".to_vec()]);
    let mut out = Vec::new();
    app.reduce(b"a", &mut SliceValues::new(&["3", "4"]), &mut out);
    assert_eq!(out, b"7");
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        app.map("bad.txt", b"boom", &mut VecEmit::default())
    }));
    let msg = panic_message(caught.unwrap_err().as_ref());
    assert!(msg.contains("boom in bad.txt"), "{msg}");
}

#[test]
fn non_plugins_are_refused_with_the_path() {
    let dir = std::env::temp_dir().join(format!("mr-plugin-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fake = dir.join("fake.so");
    std::fs::write(&fake, b"not an ELF file").unwrap();
    let err = load(&fake).err().expect("must fail").to_string();
    assert!(
        err.contains("fake.so") && err.contains("not a loadable"),
        "{err}"
    );
    let err = load(&dir.join("absent.so"))
        .err()
        .expect("must fail")
        .to_string();
    assert!(
        err.contains("absent.so") && err.contains("no such file"),
        "{err}"
    );
    // A real shared library that is not a plugin (the C library).
    if let Some(libc) = [
        "/lib/x86_64-linux-gnu/libc.so.6",
        "/lib/aarch64-linux-gnu/libc.so.6",
        "/usr/lib/libc.so.6",
    ]
    .iter()
    .find(|p| Path::new(p).exists())
    {
        let err = load(Path::new(libc))
            .err()
            .expect("libc is no plugin")
            .to_string();
        assert!(err.contains("not a MapReduce plugin"), "{err}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// An emitter that refuses one key by panicking, as the engine's
/// accumulators refuse a pair too large or a value that is no count.
struct Refusing(usize);

impl Emit for Refusing {
    fn emit(&mut self, key: &[u8], _value: &[u8]) {
        assert!(key != b"bad", "refused the key 'bad'");
        self.0 += 1;
    }
}

#[test]
fn a_panic_in_a_host_callback_fails_the_call_on_the_host_side_not_the_process() {
    let table = guest::install(|| Box::new(Touchy));
    let app = PluginApp {
        table,
        name: "touchy".into(),
        _lib: None,
    };
    // Before the callbacks caught their panics, this unwound into the
    // plugin's extern "C" function and aborted the whole process.
    let mut refusing = Refusing(0);
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        app.map("f.txt", b"ok bad more words", &mut refusing)
    }));
    let msg = panic_message(caught.unwrap_err().as_ref());
    assert!(msg.contains("refused the key 'bad'"), "{msg}");
    // Nothing after the refusal was taken, and the next call is clean.
    assert_eq!(refusing.0, 1);
    let mut e = VecEmit::default();
    app.map("g.txt", b"fine words", &mut e);
    assert_eq!(e.pairs.len(), 2);
    // The same for values and output callbacks in reduce.
    struct Exploding;
    impl Values for Exploding {
        fn next_value(&mut self) -> Option<&[u8]> {
            panic!("a value could not be read");
        }
    }
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        app.reduce(b"k", &mut Exploding, &mut Vec::new())
    }));
    let msg = panic_message(caught.unwrap_err().as_ref());
    assert!(msg.contains("a value could not be read"), "{msg}");
}

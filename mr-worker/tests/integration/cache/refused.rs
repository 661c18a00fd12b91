//! Caches that cannot be used (no app, a plain file, a missing bucket),
//! refused by name before the job starts.

use super::*;

/// Runs `mrcoordinator args` in `t`'s directory; it must fail. Returns
/// what it said.
fn refused(t: &TestDir, args: &[&str]) -> String {
    let out = Command::new(bin("mrcoordinator"))
        .args(args)
        .current_dir(t.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_cache_without_an_app_or_in_a_plain_file_is_refused_by_name() {
    let t = TestDir::new();
    let f = t.write("in.txt", b"a b\n");
    let listen = ["--quiet", "--no-socket", "--listen", "127.0.0.1:0"];
    let err = refused(&t, &[&listen[..], &["--cache", "c", &f]].concat());
    assert!(err.contains("--cache") && err.contains("--app"), "{err}");
    // A cache path that is a file.
    let embedded = ["--quiet", "--no-socket", "--workers", "1", "--app", "wc"];
    let err = refused(&t, &[&embedded[..], &["--cache", &f, &f]].concat());
    assert!(err.contains("in.txt") && err.contains("--cache"), "{err}");
}

/// A cache prefix in a bucket that does not exist is refused at start,
/// naming the prefix, before any work.
#[test]
fn a_cache_in_a_missing_bucket_is_refused_by_name() {
    let t = TestDir::new();
    let Some(moto) = crate::objects::Moto::start(&t) else {
        return;
    };
    let f = t.write("in.txt", b"a b\n");
    let (code, err) = crate::objects::run(
        &moto,
        &t,
        "mrcoordinator",
        &[
            "--quiet",
            "--no-socket",
            "--workers",
            "1",
            "--app",
            "wc",
            "--cache",
            "s3://no-such-bucket/c",
            &f,
        ],
    );
    assert_ne!(code, 0);
    assert!(
        err.contains("s3://no-such-bucket/c") && err.contains("--cache"),
        "{err}"
    );
    assert!(!err.contains(crate::objects::SECRET), "{err}");
}

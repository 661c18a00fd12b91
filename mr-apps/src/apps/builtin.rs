//! The registry of apps built into the binaries, by name.

use super::{indexer::Indexer, testapps, wc::WordCount};
use crate::AppRef;
use std::sync::Arc;

/// Names of the built-in apps, in the order `--help` lists them.
pub fn builtin_names() -> &'static [&'static str] {
    &[
        "wc",
        "indexer",
        "nocrash",
        "crash",
        "mtiming",
        "rtiming",
        "jobcount",
        "early_exit",
        "poison",
    ]
}

/// The built-in app called `name`, if there is one.
pub fn builtin(name: &str) -> Option<AppRef> {
    let app: AppRef = match name {
        "wc" => Arc::new(WordCount),
        "indexer" => Arc::new(Indexer),
        "nocrash" => Arc::new(testapps::NoCrash),
        "crash" => Arc::new(testapps::Crash),
        "mtiming" => Arc::new(testapps::MTiming),
        "rtiming" => Arc::new(testapps::RTiming),
        "jobcount" => Arc::new(testapps::JobCount::default()),
        "early_exit" => Arc::new(testapps::EarlyExit),
        "poison" => Arc::new(testapps::Poison),
        _ => return None,
    };
    Some(app)
}
